import type { IncomingMessage } from "node:http";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../../sandbox-server/src/config.ts";
import { clientAddress } from "../../../sandbox-server/src/transport/http-server.ts";
import { RateLimiter } from "../../../sandbox-server/src/transport/rate-limiter.ts";

const req = (peer: string, forwardedFor?: string) =>
  ({ socket: { remoteAddress: peer }, headers: forwardedFor === undefined ? {} : { "x-forwarded-for": forwardedFor } }) as unknown as IncomingMessage;

describe("client address for per-address limits", () => {
  const trusted = ["127.0.0.1", "::1"];

  it("is the peer when the peer is not a trusted proxy, whatever X-Forwarded-For says", () => {
    expect(clientAddress(req("198.51.100.7", "203.0.113.1"), trusted)).toBe("198.51.100.7");
    expect(clientAddress(req("::ffff:198.51.100.7"), trusted)).toBe("198.51.100.7");
  });

  it("behind a trusted proxy, is the right-most forwarded address that is not a proxy", () => {
    expect(clientAddress(req("127.0.0.1", "198.51.100.7"), trusted)).toBe("198.51.100.7");
    // The left entries come from the client and may be forged.
    expect(clientAddress(req("::ffff:127.0.0.1", "203.0.113.99, 198.51.100.7"), trusted)).toBe("198.51.100.7");
    expect(clientAddress(req("127.0.0.1", "198.51.100.7, 127.0.0.1"), trusted)).toBe("198.51.100.7");
    expect(clientAddress(req("127.0.0.1"), trusted)).toBe("127.0.0.1");
  });

  it("trusts nobody when configured so", () => {
    expect(clientAddress(req("127.0.0.1", "198.51.100.7"), [])).toBe("127.0.0.1");
  });
});

describe("rate limiter wait", () => {
  it("says how long until the next token, without taking one", () => {
    const limiter = new RateLimiter({ capacity: 2, refillPerMinute: 60 });
    const t = 1_000_000;
    expect(limiter.waitMs("a", t)).toBe(0);
    expect(limiter.take("a", t)).toBe(true);
    expect(limiter.take("a", t)).toBe(true);
    expect(limiter.waitMs("a", t)).toBe(1_000);
    expect(limiter.waitMs("a", t + 400)).toBe(600);
    expect(limiter.take("a", t + 1_000)).toBe(true);
  });
});

describe("abuse settings", () => {
  it("have defaults and are validated", () => {
    const c = loadConfig({ SHIPSHAPE_DATA_DIR: "/nonexistent" });
    expect(c.SHIPSHAPE_SESSIONS_PER_ADDRESS_PER_MINUTE).toBe(100);
    expect(c.SHIPSHAPE_TERMINALS_PER_BROWSER).toBe(16);
    expect(c.SHIPSHAPE_TRUSTED_PROXIES).toEqual(["127.0.0.1", "::1"]);
    expect(loadConfig({ SHIPSHAPE_DATA_DIR: "/nonexistent", SHIPSHAPE_TRUSTED_PROXIES: "" }).SHIPSHAPE_TRUSTED_PROXIES).toEqual([]);
    expect(() => loadConfig({ SHIPSHAPE_SESSIONS_PER_ADDRESS_PER_MINUTE: "0" })).toThrow(/SHIPSHAPE_SESSIONS_PER_ADDRESS_PER_MINUTE/);
  });
});
