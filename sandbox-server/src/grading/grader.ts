import { ShipshapeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { SandboxProbe, SandboxRuntime } from "../runtime/types.ts";
import type { Store } from "../store/store.ts";
import { CheckRunner, type Verdict } from "./checks.ts";
import type { Exercise } from "./exercise-schema.ts";

export interface TaskResult extends Verdict {
  taskId: string;
  title: string;
}

export interface ExerciseResult {
  exerciseId: string;
  passed: boolean;
  tasks: TaskResult[];
  at: string;
}

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
  private readonly running = new Set<string>();

  constructor(options: { runtime: SandboxRuntime; store?: Store; log: Logger }) {
    this.runtime = options.runtime;
    this.store = options.store;
    this.log = options.log.child({ component: "grading" });
  }

  async grade(exercise: Exercise, sandboxId: string, learner?: Learner): Promise<ExerciseResult> {
    // One check at a time per sandbox: a learner double-clicking Check gets one answer, not two probes.
    if (this.running.has(sandboxId)) {
      throw new ShipshapeError("rate_limited", "A check is already running for your sandbox; wait for its answer.");
    }
    this.running.add(sandboxId);
    let probe: SandboxProbe | undefined;
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
      this.log.info("graded", { exerciseId: exercise.id, sandboxId, sessionId: learner?.sessionId, passed: tasks.filter((t) => t.passed).length, of: tasks.length });
      return { exerciseId: exercise.id, passed: tasks.every((t) => t.passed), tasks, at: new Date(at).toISOString() };
    } finally {
      this.running.delete(sandboxId);
      await probe?.close();
    }
  }
}

/**
 * The sandbox's engine is PID 1, and every socket listening at the engine's path belongs to it.
 * A learner who replaces the socket with their own daemon is told so, and nothing passes.
 */
export async function verifyEngine(probe: SandboxProbe): Promise<void> {
  const exe = await probe.exec(["readlink", "/proc/1/exe"], { timeoutMs: 5_000 });
  if (!/\/dockerd$/.test(exe.stdout.trim())) {
    throw new ShipshapeError("sandbox_failed", "Your sandbox's Docker engine is not running as it should, so it cannot be graded. Start a new sandbox.", `pid 1 is ${exe.stdout.trim()}`);
  }
  const ss = await probe.exec(["ss", "-xlpn"], { timeoutMs: 5_000 });
  const listeners = ss.stdout.split("\n").filter((l) => /\s\/(var\/)?run\/docker\.sock\s/.test(l));
  const foreign = listeners.filter((l) => !/pid=1,/.test(l));
  if (listeners.length === 0 || foreign.length > 0) {
    throw new ShipshapeError(
      "sandbox_failed",
      "The Docker engine socket in your sandbox was replaced, so your work cannot be graded. Start a new sandbox, or remove what you put at /var/run/docker.sock.",
      `docker.sock listeners: ${listeners.join(" | ") || "none"}`,
    );
  }
}
