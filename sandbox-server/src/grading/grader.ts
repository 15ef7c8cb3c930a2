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
 * Runs an exercise's checks in a sandbox and stores the verdicts. The checks run in a probe whose
 * every connection to the engine is proven to reach the sandbox's real engine (the runtime's job,
 * see SandboxProbe), so a fake daemon socket cannot make a check pass: a check that met one fails
 * with a message saying so.
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
      // The sandbox's kept probe: no container start per press (a class pressing Check together
      // waited on fifty of them).
      probe = await this.runtime.probe(sandboxId, { keep: true });
      const runner = new CheckRunner(probe);
      const tasks: TaskResult[] = [];
      for (const task of exercise.tasks) {
        let verdict: Verdict;
        try {
          verdict = await runner.run(task.check);
          if (!verdict.passed && task.failMessage) verdict = { passed: false, message: task.failMessage };
        } catch (e) {
          if (e instanceof ShipshapeError && e.code === "sandbox_failed") {
            // The probe refused what answered as the engine: say so, never a hint about the task.
            this.log.warn("engine verification failed", { exerciseId: exercise.id, taskId: task.id, sandboxId, detail: e.detail });
            verdict = { passed: false, message: e.userMessage };
          } else {
            this.log.warn("check failed to run", { exerciseId: exercise.id, taskId: task.id, sandboxId, error: String(e) });
            verdict = { passed: false, message: "This check could not run; try again." };
          }
        }
        tasks.push({ taskId: task.id, title: task.title, ...verdict });
      }
      const at = Date.now();
      if (learner && this.store) {
        for (const t of tasks) {
          await this.store.results.insert({ ...learner, exerciseId: exercise.id, taskId: t.taskId, passed: t.passed, message: t.message, at });
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
