import type { Logger } from "../log.ts";
import type { NetworkCheck, SandboxRuntime } from "../runtime/types.ts";

/** The last verdict on the sandbox network, as the health endpoints report it. */
export type NetworkStatus = NetworkCheck;

const ENGINE_RETRY_MS = 2_000;

/**
 * Keeps checking the host firewall that isolates sandboxes (egress policy, port pins): at start and
 * every `intervalMs`, because a firewall reload, a reboot or an operator's `iptables -F` removes it
 * silently, and the sandboxes would then reach the host, metadata and each other with nobody told.
 * Each check repairs what it can (when `repair`); the runtime refuses new sandboxes while a check
 * fails; /readyz and the log say why.
 */
export class NetworkWatch {
  private readonly runtime: SandboxRuntime;
  private readonly log: Logger;
  private readonly intervalMs: number;
  private readonly repair: boolean;
  private last: NetworkCheck | undefined;
  private running: Promise<NetworkCheck> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: { runtime: SandboxRuntime; log: Logger; intervalMs: number; repair: boolean }) {
    this.runtime = options.runtime;
    this.log = options.log.child({ component: "network" });
    this.intervalMs = options.intervalMs;
    this.repair = options.repair;
  }

  /** The first check (awaited, so survivors of a restart are pinned before anyone is served), then the period. */
  async start(): Promise<void> {
    await this.check();
    this.timer = setInterval(() => void this.check(), this.intervalMs);
    this.timer.unref();
  }

  /** The last check; undefined before the first one finished. Always ok for a runtime without host firewall. */
  status(): NetworkCheck | undefined {
    if (!this.runtime.checkNetwork) return { ok: true, problems: [], repaired: [], at: Date.now() };
    return this.last;
  }

  /** One check now (or the one under way). */
  check(): Promise<NetworkCheck> {
    if (!this.runtime.checkNetwork) return Promise.resolve(this.status()!);
    this.running ??= this.runtime
      .checkNetwork({ repair: this.repair })
      .then((result) => {
        if (result.engineUnreachable) {
          // Nothing was checked; check again as soon as the engine is back, not a period later.
          if (!this.closed) setTimeout(() => void this.check(), ENGINE_RETRY_MS).unref();
          this.last ??= result;
          return result;
        }
        this.report(result);
        this.last = result;
        return result;
      })
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
  }

  /** Changes go to the log once, not every period. */
  private report(result: NetworkCheck): void {
    for (const what of result.repaired) this.log.warn(`sandbox network repaired: ${what}`);
    const before = this.last;
    if (!result.ok && (before === undefined || before.ok || before.problems.join() !== result.problems.join())) {
      this.log.error("sandbox network isolation NOT verified: new sandboxes are refused until it is", {
        problems: result.problems,
        repair: this.repair ? "tried" : "off (SHIPSHAPE_NETWORK_REPAIR=false)",
      });
    } else if (result.ok && before !== undefined && !before.ok) {
      this.log.warn("sandbox network isolation verified again: new sandboxes are allowed");
    } else if (result.ok && before === undefined) {
      this.log.info("sandbox network isolation verified (egress policy, port pins)");
    }
  }
}
