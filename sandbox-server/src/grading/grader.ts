import type { CheckResult, TaskResult } from "../../../contracts/grading-api.ts";
import { ShipshapeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { secondsSince, type ServerMetrics } from "../metrics.ts";
import type { SandboxProbe, SandboxRuntime } from "../runtime/types.ts";
import type { Store } from "../store/store.ts";
import { CheckRunner, type Verdict } from "./checks.ts";
import type { Exercise } from "../../../contracts/content/exercise-schema.ts";

/** Who is being graded: results are stored against them, never taken from the browser. */
export interface Learner {
  ownerId: string;
  sessionId: string;
  workshopId: string | null;
}

/**
 * Runs an exercise's checks in a sandbox and stores the verdicts. Before any check, it makes sure
 * it is talking to the sandbox's real engine (PID 1, the dockerd the sandbox started with), so a
 * fake daemon socket cannot make a check pass.
 */
export class Grader {
  private readonly runtime: SandboxRuntime;
  private readonly store: Store | undefined;
  private readonly log: Logger;
  private readonly metrics: ServerMetrics | undefined;
  private readonly running = new Set<string>();
  private readonly maxProbes: number;
  private probesRunning = 0;
  /** Checks waiting for a probe slot, first come first served. */
  private readonly waiting: Array<() => void> = [];

  /**
   * maxProbes bounds the probe containers that run at once: when a whole class presses Check
   * together, a queue served in order answers sooner than fifty probes fighting over one engine.
   */
  constructor(options: { runtime: SandboxRuntime; store?: Store; log: Logger; maxProbes?: number; metrics?: ServerMetrics }) {
    this.runtime = options.runtime;
    this.metrics = options.metrics;
    this.store = options.store;
    this.log = options.log.child({ component: "grading" });
    this.maxProbes = options.maxProbes ?? Number.POSITIVE_INFINITY;
  }

  private async probeSlot(): Promise<() => void> {
    if (this.probesRunning >= this.maxProbes) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.probesRunning++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next(); // the slot passes straight to the next check
      else this.probesRunning--;
    };
  }

  async grade(exercise: Exercise, sandboxId: string, learner?: Learner): Promise<CheckResult> {
    // One check at a time per sandbox: a learner double-clicking Check gets one answer, not two probes.
    if (this.running.has(sandboxId)) {
      throw new ShipshapeError("rate_limited", "A check is already running for your sandbox; wait for its answer.");
    }
    this.running.add(sandboxId);
    const pressed = performance.now();
    let outcome = "error";
    let probe: SandboxProbe | undefined;
    const release = await this.probeSlot();
    try {
      probe = await this.runtime.probe(sandboxId);
      const tampered = await verifyEngine(probe).then(
        () => undefined,
        (e: unknown) => (e instanceof ShipshapeError ? e : Promise.reject(e)),
      );
      if (tampered) this.log.warn("engine verification failed", { exerciseId: exercise.id, sandboxId, detail: tampered.detail });
      const runner = new CheckRunner(probe);
      const tasks: TaskResult[] = [];
      for (const task of exercise.tasks) {
        if (tampered) {
          tasks.push({ taskId: task.id, title: task.title, passed: false, message: tampered.userMessage });
          continue;
        }
        let verdict: Verdict;
        try {
          verdict = await runner.run(task.check);
        } catch (e) {
          this.log.warn("check failed to run", { exerciseId: exercise.id, taskId: task.id, sandboxId, error: String(e) });
          verdict = { passed: false, message: "This check could not run; try again." };
        }
        if (!verdict.passed && task.failMessage) verdict = { passed: false, message: task.failMessage };
        tasks.push({ taskId: task.id, title: task.title, ...verdict });
      }
      const at = Date.now();
      if (learner && this.store) {
        for (const t of tasks) {
          this.store.results.insert({ ...learner, exerciseId: exercise.id, taskId: t.taskId, passed: t.passed, message: t.message, at });
        }
      }
      outcome = tasks.every((t) => t.passed) ? "passed" : "failed";
      this.log.info("graded", { exerciseId: exercise.id, sandboxId, sessionId: learner?.sessionId, passed: tasks.filter((t) => t.passed).length, of: tasks.length });
      return { exerciseId: exercise.id, passed: tasks.every((t) => t.passed), tasks, at: new Date(at).toISOString() };
    } finally {
      this.running.delete(sandboxId);
      this.metrics?.checkDuration.observe({ outcome }, secondsSince(pressed));
      // Removing the probe is not part of the answer: the learner hears the verdict without waiting for it.
      const closing = probe?.close() ?? Promise.resolve();
      void closing.finally(release);
    }
  }
}

/**
 * The sandbox's engine is PID 1, and every socket listening at the engine's path belongs to it.
 * A learner who replaces the socket with their own daemon is told so, and nothing passes.
 */
export async function verifyEngine(probe: SandboxProbe): Promise<void> {
  // One exec for both questions: each exec is a round trip to the host's engine (~60 ms quiet, far more in a busy class).
  const r = await probe.exec(["sh", "-c", "readlink /proc/1/exe; echo ---; ss -xlpn"], { timeoutMs: 5_000 });
  const [exe = "", ss = ""] = r.stdout.split("\n---\n");
  if (!/\/dockerd$/.test(exe.trim())) {
    throw new ShipshapeError("sandbox_failed", "Your sandbox's Docker engine is not running as it should, so it cannot be graded. Start a new sandbox.", `pid 1 is ${exe.trim()}`);
  }
  const listeners = ss.split("\n").filter((l) => /\s\/(var\/)?run\/docker\.sock\s/.test(l));
  const foreign = listeners.filter((l) => !/pid=1,/.test(l));
  if (listeners.length === 0 || foreign.length > 0) {
    throw new ShipshapeError(
      "sandbox_failed",
      "The Docker engine socket in your sandbox was replaced, so your work cannot be graded. Start a new sandbox, or remove what you put at /var/run/docker.sock.",
      `docker.sock listeners: ${listeners.join(" | ") || "none"}`,
    );
  }
}
