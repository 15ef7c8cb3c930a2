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

/**
 * Owners holding something at once (a live sandbox), per key (a client address). Who still holds
 * is asked of `holds` whenever the key is counted, so an owner whose sandbox ended (expired,
 * reaped, ended by the learner) frees its place without being told.
 */
export class ConcurrencyLimit {
  private readonly holders = new Map<string, Set<string>>();
  private readonly holds: (owner: string) => boolean;

  constructor(holds: (owner: string) => boolean) {
    this.holds = holds;
  }

  /** Owners under `key` that still hold, `except` one (a browser replacing its own sandbox). */
  count(key: string, except?: string): number {
    const set = this.holders.get(key);
    if (!set) return 0;
    for (const owner of set) if (!this.holds(owner)) set.delete(owner);
    if (set.size === 0) this.holders.delete(key);
    return set.size - (except !== undefined && set.has(except) ? 1 : 0);
  }

  add(key: string, owner: string): void {
    const set = this.holders.get(key) ?? new Set<string>();
    set.add(owner);
    this.holders.set(key, set);
    if (this.holders.size > 10_000) for (const k of [...this.holders.keys()]) if (k !== key) this.count(k);
  }
}

/**
 * The key a per-address rule counts under: an IPv4 address as it is, an IPv6 address by its /64.
 * One IPv6 subscriber is routinely given a whole /64 and can use a new address for every request.
 */
export function addressKey(address: string): string {
  const hextets = ipv6Hextets(address);
  if (!hextets) return address;
  return `${hextets.slice(0, 4).map((h) => h.toString(16)).join(":")}::/64`;
}

/** The eight 16-bit groups of an IPv6 address, or undefined when it is not one. */
function ipv6Hextets(address: string): number[] | undefined {
  let text = address.trim().toLowerCase().replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  if (!text.includes(":")) return undefined;
  // A dotted IPv4 tail (64:ff9b::192.0.2.1) is two groups.
  const v4 = /^(.*:)(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) {
    const b = v4.slice(2).map(Number);
    if (b.some((x) => x > 255)) return undefined;
    text = `${v4[1]}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const parse = (part: string) => (part === "" ? [] : part.split(":"));
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  if (groups.some((g) => !/^[0-9a-f]{1,4}$/.test(g))) return undefined;
  return groups.map((g) => parseInt(g, 16));
}
