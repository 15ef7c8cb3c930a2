import { describe, expect, it } from "vitest";
import { PreviewTokens } from "../../../sandbox-server/src/preview/preview-tokens.ts";
import { Signer } from "../../../sandbox-server/src/common/signing.ts";

const SID = "abcdefgh12345678";

describe("preview tokens", () => {
  const signer = new Signer("a-test-secret-that-is-long-enough-0123456789");
  const tokens = new PreviewTokens(signer);
  const now = Date.now();
  const grant = { purpose: "open" as const, sessionId: SID, port: 8080, role: "owner", ownerId: "owner1", expiresAt: now + 60_000 };

  it("reads back what it issued, for the purposes asked", () => {
    const token = tokens.issue(grant);
    expect(tokens.read(token, ["open", "share"], now)).toMatchObject(grant);
    expect(tokens.read(token, ["access"], now)).toBeUndefined();
  });

  it("refuses expired, tampered and foreign tokens", () => {
    const token = tokens.issue(grant);
    expect(tokens.read(token, ["open"], now + 60_000)).toBeUndefined();
    expect(tokens.read(token.replace(":8080:", ":8081:"), ["open"], now)).toBeUndefined();
    expect(tokens.read(new PreviewTokens(new Signer("another-secret-entirely-0123456789abcdef")).issue(grant), ["open"], now)).toBeUndefined();
    expect(tokens.read(undefined, ["open"], now)).toBeUndefined();
    expect(tokens.read("x".repeat(600), ["open"], now)).toBeUndefined();
  });

  it("is never accepted as an owner cookie or session token, nor they as it", () => {
    const token = tokens.issue(grant);
    expect(signer.verify(token)).toBeUndefined();
    expect(signer.verifySessionToken(token, "owner1")).toBeUndefined();
    const ownerCookie = signer.sign(`open:${SID}:8080:owner:owner1:${(now + 60_000).toString(36)}:nonce`);
    expect(tokens.read(ownerCookie, ["open"], now)).toBeUndefined();
  });

  it("lets an open token be spent once", () => {
    const read = tokens.read(tokens.issue(grant), ["open"], now)!;
    expect(tokens.spend(read, now)).toBe(true);
    expect(tokens.spend(read, now)).toBe(false);
    const other = tokens.read(tokens.issue(grant), ["open"], now)!;
    expect(tokens.spend(other, now)).toBe(true);
  });
});
