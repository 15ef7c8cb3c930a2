import { describe, expect, it } from "vitest";
import { Signer } from "../../../sandbox-server/src/common/signing.ts";

describe("signed tokens", () => {
  const signer = new Signer("a-test-secret-that-is-long-enough-0123456789");

  it("binds a session to the browser it was issued to", () => {
    const token = signer.sessionToken("s1", "owner-a");
    expect(signer.verifySessionToken(token, "owner-a")).toBe("s1");
    expect(signer.verifySessionToken(token, "owner-b")).toBeUndefined();
  });

  it("rejects forged and tampered values", () => {
    const cookie = signer.sign("owner-a");
    expect(signer.verify(cookie)).toBe("owner-a");
    expect(signer.verify(cookie.replace("owner-a", "owner-b"))).toBeUndefined();
    expect(signer.verify("owner-a.")).toBeUndefined();
    expect(signer.verify(new Signer("another-secret-entirely-0123456789abcdef").sign("owner-a"))).toBeUndefined();
    expect(signer.verify(undefined)).toBeUndefined();
  });
});
