/** A token bucket per key: `capacity` at once, refilled steadily. Old keys are forgotten. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly capacity: number;
  private readonly perMs: number;

  constructor(options: { capacity: number; refillPerMinute: number }) {
    this.capacity = options.capacity;
    this.perMs = options.refillPerMinute / 60_000;
  }

  take(key: string, now = Date.now()): boolean {
    const b = this.refill(key, now);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Milliseconds until `take(key)` would succeed; 0 when it would now. Takes nothing. */
  waitMs(key: string, now = Date.now()): number {
    const b = this.refill(key, now);
    return b.tokens >= 1 ? 0 : Math.ceil((1 - b.tokens) / this.perMs);
  }

  private refill(key: string, now: number): { tokens: number; at: number } {
    const b = this.buckets.get(key) ?? { tokens: this.capacity, at: now };
    b.tokens = Math.min(this.capacity, b.tokens + Math.max(0, now - b.at) * this.perMs);
    b.at = now;
    this.buckets.set(key, b);
    if (this.buckets.size > 10_000) this.forgetFull(now, key);
    return b;
  }

  private forgetFull(now: number, keep: string): void {
    for (const [k, b] of this.buckets) {
      if (k !== keep && b.tokens + (now - b.at) * this.perMs >= this.capacity) this.buckets.delete(k);
    }
  }
}
