import type { Logger } from "../log.ts";
import type { SandboxInfo, SandboxLimits, SandboxRuntime } from "../runtime/types.ts";
import type { PoolMemberRecord } from "../store/store.ts";
import { newId } from "../common/signing.ts";

/**
 * Where pool membership is recorded (the store's `pool` table). Labels cannot say it: a claimed
 * pool sandbox keeps its "pool" labels for life (container labels are immutable), so after a
 * restart only this record tells a free pool member from a learner's sandbox.
 */
export interface PoolMembership {
  add(member: PoolMemberRecord): Promise<void>;
  remove(sandboxId: string): Promise<void>;
}

/** Pooled sandboxes are labelled with a session id of this form and no owner. */
const POOL_PREFIX = "pool-";
/** Sandboxes a pool starts at once. */
const MAX_STARTING = 4;
/** A pooled sandbox waits at most this long for a learner before it is replaced. */
const POOL_SANDBOX_LIFETIME_MS = 24 * 3600_000;

/**
 * Sandboxes started ahead of demand, with their inner engine already answering, so a learner's
 * first prompt costs one exec instead of a container start. `take` is synchronous: two learners
 * can never be handed the same sandbox. A pool with a `workshopId` is that workshop's reserve:
 * its sandboxes carry the workshop's label and only its learners take them. Every ready sandbox
 * is recorded in `members`; the claim removes it there (with the session's binding, in one
 * transaction: see SessionManager.open).
 */
export class WarmPool {
  private readonly runtime: SandboxRuntime;
  private readonly target: () => number;
  private readonly workshopId: string | undefined;
  private readonly limits: SandboxLimits;
  private readonly log: Logger;
  private readonly capacityLeft: () => number;
  private readonly members: PoolMembership;
  private readonly ready: string[] = [];
  /** Session labels of pooled sandboxes still starting, so the reaper leaves them alone. */
  private readonly pending = new Set<string>();
  private filling = 0;
  private stopped = false;

  constructor(options: {
    runtime: SandboxRuntime;
    /** How many to keep; a function when the target moves (a workshop's seats still to fill). */
    size: number | (() => number);
    limits: SandboxLimits;
    log: Logger;
    capacityLeft: () => number;
    members: PoolMembership;
    workshopId?: string;
  }) {
    this.runtime = options.runtime;
    const size = options.size;
    this.target = typeof size === "number" ? () => size : size;
    this.workshopId = options.workshopId;
    this.limits = options.limits;
    this.log = options.log.child({ component: "warm-pool", ...(options.workshopId ? { workshopId: options.workshopId } : {}) });
    this.capacityLeft = options.capacityLeft;
    this.members = options.members;
  }

  /** Ready sandboxes plus the ones being started. */
  get count(): number {
    return this.ready.length + this.filling;
  }

  get readyCount(): number {
    return this.ready.length;
  }

  static isPooled(info: SandboxInfo): boolean {
    return info.ownerId === "" && info.sessionId.startsWith(POOL_PREFIX);
  }

  owns(info: SandboxInfo): boolean {
    return this.ready.includes(info.id) || this.pending.has(info.sessionId);
  }

  /**
   * Takes back a pooled sandbox that outlived a server restart. Only for sandboxes the store
   * lists as unclaimed members of this pool (SessionManager.start checks); the labels must agree.
   */
  adopt(info: SandboxInfo): boolean {
    if (!WarmPool.isPooled(info) || info.workshopId !== this.workshopId) return false;
    if (!info.running || this.ready.length >= this.target() || info.expiresAt <= Date.now()) return false;
    this.ready.push(info.id);
    return true;
  }

  take(): string | undefined {
    const id = this.ready.shift();
    if (id) this.fill();
    return id;
  }

  /**
   * Starts sandboxes in the background until the pool is full or the server is, a few at a time:
   * fifty inner engines booting at once on a small machine all miss their start deadline.
   */
  fill(): void {
    while (!this.stopped && this.count < this.target() && this.capacityLeft() > 0 && this.filling < MAX_STARTING) {
      this.filling++;
      const started = Date.now();
      const sessionId = `${POOL_PREFIX}${newId(8)}`;
      this.pending.add(sessionId);
      const done = () => {
        this.filling--;
        this.pending.delete(sessionId);
      };
      this.runtime
        .create({
          sessionId,
          ownerId: "",
          workshopId: this.workshopId,
          expiresAt: Date.now() + POOL_SANDBOX_LIFETIME_MS,
          limits: this.limits,
        })
        .then(
          async (info) => {
            if (this.stopped) {
              done();
              return void this.runtime.destroy(info.id).catch(() => {});
            }
            try {
              await this.members.add({ sandboxId: info.id, workshopId: this.workshopId ?? null, addedAt: Date.now(), expiresAt: info.expiresAt });
            } catch (e) {
              done();
              // Unrecorded, it could never be claimed (the claim checks the record): remove it.
              this.log.error("could not record a warm sandbox; removing it", { sandboxId: info.id, error: String(e) });
              void this.runtime.destroy(info.id).catch(() => {});
              setTimeout(() => this.fill(), 5_000).unref();
              return;
            }
            // Counted as filling until recorded, so a concurrent fill() does not start one too many.
            done();
            if (this.stopped) {
              // drain() ran while the record was being written: it never saw this one.
              await this.runtime.destroy(info.id).catch(() => {});
              await this.members.remove(info.id).catch(() => {});
              return;
            }
            this.ready.push(info.id);
            this.log.debug("warm sandbox ready", { sandboxId: info.id, ms: Date.now() - started });
            this.fill();
          },
          (e: unknown) => {
            done();
            this.log.warn("could not start a warm sandbox", { error: String(e) });
            // Back off so an engine problem does not turn into a tight loop.
            setTimeout(() => this.fill(), 5_000).unref();
          },
        );
    }
  }

  /** Removes the sandboxes nobody claimed. */
  async drain(): Promise<void> {
    this.stopped = true;
    const ids = this.ready.splice(0);
    await Promise.all(
      ids.map(async (id) => {
        await this.runtime.destroy(id).catch(() => {});
        await this.members.remove(id);
      }),
    );
  }
}
