import { toShipshapeError, type ShipshapeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { SandboxRuntime } from "../runtime/types.ts";
import type { SessionManager } from "./session-manager.ts";

/** An answer younger than this is reused: /healthz and every new session ask, the engine is asked once. */
const ANSWER_TTL_MS = 2_000;
/** Watched in the background too, so an outage is noticed (and logged) with nobody asking. */
const WATCH_INTERVAL_MS = 5_000;

/**
 * Whether the sandbox engine answers. `/healthz` reports it and a new sandbox is refused at once
 * while it is down, with the reason. When the engine comes back, sessions whose sandboxes stopped
 * while it was away are ended, saying why.
 */
export class EngineHealth {
  private readonly runtime: Pick<SandboxRuntime, "ping">;
  private readonly sessions: Pick<SessionManager, "reap">;
  private readonly log: Logger;
  private last: { at: number; error: ShipshapeError | undefined } = { at: 0, error: undefined };
  private engineUp = true;
  private readonly watch: NodeJS.Timeout;

  constructor(deps: { runtime: Pick<SandboxRuntime, "ping">; sessions: Pick<SessionManager, "reap">; metrics: Metrics; log: Logger }) {
    this.runtime = deps.runtime;
    this.sessions = deps.sessions;
    this.log = deps.log.child({ component: "http" });
    this.watch = setInterval(() => void this.check(), WATCH_INTERVAL_MS);
    this.watch.unref();
    deps.metrics.gauge("shipshape_engine_up", "1 when the sandbox engine answers, 0 when it does not", () => (this.engineUp ? 1 : 0));
  }

  /** Undefined while the engine answers; otherwise why it does not, in words for the learner. */
  async check(): Promise<ShipshapeError | undefined> {
    if (Date.now() - this.last.at < ANSWER_TTL_MS) return this.last.error;
    try {
      await this.runtime.ping();
      this.last = { at: Date.now(), error: undefined };
    } catch (e) {
      this.last = { at: Date.now(), error: toShipshapeError(e) };
    }
    const error = this.last.error;
    // Report changes once, in the log and in /metrics, rather than on every request.
    if (error && this.engineUp) {
      this.engineUp = false;
      this.log.error("sandbox engine unavailable", { code: error.code, reason: error.userMessage, detail: error.detail });
    } else if (!error && !this.engineUp) {
      this.engineUp = true;
      this.log.warn("sandbox engine available again");
      // Sandboxes that stopped while it was away: end their sessions now, saying why.
      void this.sessions.reap();
    }
    return error;
  }

  close(): void {
    clearInterval(this.watch);
  }
}
