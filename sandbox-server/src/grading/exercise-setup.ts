import type { Exercise } from "../../../contracts/content/exercise-schema.ts";
import type { SetupResult } from "../../../contracts/grading-api.ts";
import { ShipshapeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { SandboxRuntime } from "../runtime/types.ts";
import type { SessionManager } from "../sessions/session-manager.ts";
import type { Store } from "../store/store.ts";

/** Long enough for a setup that builds an image or pulls through the mirror; bounded for the server. */
const SETUP_TIMEOUT_MS = 180_000;

export interface ExerciseSetupDeps {
  exercises: ReadonlyMap<string, Exercise>;
  sessions: Pick<SessionManager, "current" | "sandboxOf">;
  runtime: Pick<SandboxRuntime, "exec">;
  store: Store;
  log: Logger;
}

/**
 * An exercise's starting state (`setup:` in its YAML, or an imported scenario's assets and
 * background.sh): run in the learner's own sandbox the first time they open the lesson there, so
 * "no hello-world left" means they removed some, not that there never were any. It runs once per
 * sandbox, remembered in the store; "reset my sandbox" (a new sandbox) starts with no record, so
 * the setup runs again.
 *
 * The script is the author's, trusted; it runs in the sandbox as root (like the learner's shell),
 * never in the server or the probe.
 */
export class ExerciseSetup {
  private readonly inFlight = new Map<string, Promise<SetupResult>>();
  private readonly log: Logger;
  private readonly deps: ExerciseSetupDeps;

  constructor(deps: ExerciseSetupDeps) {
    this.deps = deps;
    this.log = deps.log.child({ component: "exercise-setup" });
  }

  async prepare(ownerId: string | undefined, exerciseId: string): Promise<SetupResult> {
    const exercise = this.deps.exercises.get(exerciseId);
    if (!exercise) throw new ShipshapeError("not_found", `There is no exercise called "${exerciseId}".`);
    if (exercise.setup === undefined) return { exerciseId, state: "none" };
    const view = ownerId ? await this.deps.sessions.current(ownerId) : undefined;
    if (!view) throw new ShipshapeError("not_found", "You have no sandbox yet: open a terminal first.");
    const sandboxId = await this.deps.sessions.sandboxOf(view.sessionId, view.ownerId);
    // Two tabs of one lesson ask at once: both wait for the one run (asked again after the store answers).
    const key = `${sandboxId}\0${exerciseId}`;
    const before = this.inFlight.get(key);
    if (before) return before;
    if (await this.deps.store.setups.ran(sandboxId, exerciseId)) return { exerciseId, state: "already" };
    const running = this.inFlight.get(key);
    if (running) return running;
    const run = this.run(exercise, exercise.setup, sandboxId, view.sessionId).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, run);
    return run;
  }

  private async run(exercise: Exercise, setup: string, sandboxId: string, sessionId: string): Promise<SetupResult> {
    const started = performance.now();
    const r = await this.deps.runtime.exec(sandboxId, ["bash", "-c", setup], { timeoutMs: SETUP_TIMEOUT_MS, env: ["HOME=/root"], maxOutputBytes: 64 * 1024 });
    if (r.exitCode !== 0 || r.timedOut) {
      this.log.warn("exercise setup failed", {
        exerciseId: exercise.id,
        sandboxId,
        sessionId,
        exitCode: r.exitCode,
        timedOut: r.timedOut,
        stderr: r.stderr.slice(-2000),
      });
      throw new ShipshapeError(
        "sandbox_failed",
        `Your sandbox could not be prepared for "${exercise.title}"${r.timedOut ? " in time" : ""}. Reload the page to try again, or start a new sandbox.`,
        `setup of ${exercise.id} exited ${r.exitCode}${r.timedOut ? " (timed out)" : ""}`,
      );
    }
    // Recorded only after it worked: a failed setup is tried again on the next visit.
    await this.deps.store.setups.record(sandboxId, exercise.id, Date.now());
    this.log.info("exercise setup ran", { exerciseId: exercise.id, sandboxId, sessionId, ms: Math.round(performance.now() - started) });
    return { exerciseId: exercise.id, state: "ran", ...(exercise.start ? { start: exercise.start } : {}) };
  }
}
