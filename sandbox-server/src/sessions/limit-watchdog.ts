import type { Logger } from "../log.ts";
import type { SandboxEvent, SandboxRuntime } from "../runtime/types.ts";
import { isAttached, type EndSession, type LiveSession } from "./live-session.ts";
import type { SessionPolicy } from "./session-manager.ts";
import { diskOverMessage, gib, mib, sandboxGoneMessage } from "./session-messages.ts";

const NOTICE_INTERVAL_MS = 60_000;
/** Disk is measured every this many limit checks: it walks the inner engine's storage. */
const DISK_CHECK_EVERY = 6;
/** Above this share of the disk limit the sandbox is ended: there is no hard quota on every filesystem. */
const DISK_HARD_FACTOR = 1.25;

/**
 * The limit watchdog: tells learners in plain words when their sandbox nears a limit (processes,
 * memory, disk) or the engine killed something, and ends a sandbox far over its disk limit.
 */
export class LimitWatchdog {
  private rounds = 0;
  private readonly runtime: SandboxRuntime;
  private readonly policy: SessionPolicy;
  private readonly log: Logger;
  private readonly sessions: () => Iterable<LiveSession>;
  private readonly end: EndSession;

  constructor(options: { runtime: SandboxRuntime; policy: SessionPolicy; log: Logger; sessions: () => Iterable<LiveSession>; end: EndSession }) {
    this.runtime = options.runtime;
    this.policy = options.policy;
    this.log = options.log;
    this.sessions = options.sessions;
    this.end = options.end;
  }

  /**
   * One round over the live sessions. Disk is measured for every sandbox, attached or not:
   * closing the tab must not let a `dd` run on.
   */
  async check(): Promise<void> {
    const measureDisk = this.rounds++ % DISK_CHECK_EVERY === 0;
    const { limits } = this.policy;
    for (const live of [...this.sessions()]) {
      const sandboxId = live.record.sandboxId;
      if (!sandboxId || live.status.state !== "ready") continue;
      const attached = isAttached(live);
      if (!attached && !measureDisk) continue;
      const usage = await this.runtime.usage(sandboxId, { disk: measureDisk }).catch(() => undefined);
      if (!usage) continue;
      if (!attached) {
        if (usage.diskBytes !== undefined && usage.diskBytes >= limits.diskBytes * DISK_HARD_FACTOR) {
          this.log.warn("detached sandbox far over its disk limit; ending it", { sessionId: live.record.id, sandboxId, bytes: usage.diskBytes });
          await this.end(live.record.id, `sandbox stopped: ${diskOverMessage(usage.diskBytes, limits.diskBytes)}`);
        }
        continue;
      }
      if (usage.pids >= limits.pids * 0.9) {
        this.notify(live, "pids_limit", `Your sandbox is at its limit of ${limits.pids} processes, so new programs cannot start. Something may be starting processes in a loop: press Ctrl-C, or start a new sandbox.`);
      }
      if (usage.memoryBytes >= limits.memoryBytes * 0.9) {
        this.notify(live, "memory_limit", `Your sandbox is using ${mib(usage.memoryBytes)} of its ${mib(limits.memoryBytes)} memory limit. Programs that need more will be stopped: try stopping containers you no longer need (docker ps, docker stop).`);
      }
      if (usage.diskBytes !== undefined && usage.diskBytes >= limits.diskBytes * 0.9) {
        if (usage.diskBytes >= limits.diskBytes * DISK_HARD_FACTOR) {
          this.log.warn("sandbox far over its disk limit; ending it", { sessionId: live.record.id, sandboxId, bytes: usage.diskBytes });
          await this.end(live.record.id, `sandbox stopped: ${diskOverMessage(usage.diskBytes, limits.diskBytes)}`);
          continue;
        }
        this.notify(live, "disk_limit", `Your sandbox is using ${gib(usage.diskBytes)} of its ${gib(limits.diskBytes)} disk limit for images, containers and volumes. Free space with: docker system prune -a. Far over the limit, the sandbox is stopped.`);
      }
    }
  }

  /** An engine event about a sandbox: an OOM kill is told; a stop ends the session, saying why. */
  onSandboxEvent(sandboxId: string, event: SandboxEvent): void {
    for (const live of this.sessions()) {
      if (live.record.sandboxId !== sandboxId) continue;
      if (event.kind === "oom") {
        this.notify(live, "oom", `A program in your sandbox needed more than the sandbox's memory limit of ${mib(this.policy.limits.memoryBytes)} and was stopped by the system ("Killed").`);
        continue;
      }
      const reason = event.reason;
      // The engine may be going away itself (it stops every container when it stops): never let
      // the look-up reject unobserved, which would end the whole server.
      void this.runtime.inspect(sandboxId).catch(() => null).then((info) => {
        const why = info?.exitReason === "oom" ? "oom" : reason;
        this.log.warn("sandbox stopped under its learner", { sessionId: live.record.id, sandboxId, reason: why });
        for (const hub of live.hubs.values()) hub.broadcast({ type: "notice", code: "sandbox_stopped", message: sandboxGoneMessage(why, this.policy) });
        this.end(live.record.id, `sandbox stopped: ${sandboxGoneMessage(why, this.policy)}`).catch((e: unknown) =>
          this.log.warn("could not end a session whose sandbox stopped", { sessionId: live.record.id, error: String(e) }),
        );
      });
    }
  }

  private notify(live: LiveSession, code: string, message: string): void {
    const last = live.noticesSent.get(code) ?? 0;
    if (Date.now() - last < NOTICE_INTERVAL_MS) return;
    live.noticesSent.set(code, Date.now());
    for (const hub of live.hubs.values()) hub.broadcast({ type: "notice", code, message });
    this.log.info("limit notice", { sessionId: live.record.id, sandboxId: live.record.sandboxId, code });
  }
}
