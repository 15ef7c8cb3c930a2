import { describe, expect, it } from "vitest";
import { RateLimiter } from "../../../sandbox-server/src/transport/rate-limiter.ts";

describe("rate limiter", () => {
  it("allows a burst, then refills over time, per key", () => {
    const limiter = new RateLimiter({ capacity: 3, refillPerMinute: 60 });
    const t = 1_000_000;
    expect([1, 2, 3, 4].map(() => limiter.take("a", t))).toEqual([true, true, true, false]);
    expect(limiter.take("b", t)).toBe(true);
    expect(limiter.take("a", t + 1_000)).toBe(true);
    expect(limiter.take("a", t + 1_000)).toBe(false);
  });
});
