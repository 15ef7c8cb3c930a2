import type { ExerciseColumn } from "../../../contracts/workshop-api.ts";
import type { WorkshopStore } from "../store/workshop-store.ts";
import { toCsv } from "./csv.ts";
import type { RecordedVerdict } from "./grid-cells.ts";
import type { WorkshopViews } from "./workshop-views.ts";

/** One gradebook row per learner and task: the verdict they reached, and when. */
export interface GradeRow {
  learner: string;
  exercise: string;
  task: string;
  verdict: "passed" | "failed" | "not attempted";
  /** ISO time of the first pass, or of the last failed check; empty when never checked. */
  time: string;
}

export function gradebook(
  learners: ReadonlyArray<{ name: string; verdicts: readonly RecordedVerdict[] }>,
  exercises: readonly ExerciseColumn[],
): GradeRow[] {
  const rows: GradeRow[] = [];
  for (const learner of learners) {
    for (const exercise of exercises) {
      for (const task of exercise.tasks) {
        const mine = learner.verdicts.filter((v) => v.exerciseId === exercise.id && v.taskId === task.id);
        const firstPass = mine.filter((v) => v.passed).sort((a, b) => a.at - b.at)[0];
        const last = mine.sort((a, b) => b.at - a.at)[0];
        rows.push({
          learner: learner.name,
          exercise: exercise.id,
          task: task.id,
          verdict: firstPass ? "passed" : last ? "failed" : "not attempted",
          time: firstPass ? new Date(firstPass.at).toISOString() : last ? new Date(last.at).toISOString() : "",
        });
      }
    }
  }
  return rows;
}

/** The gradebook as CSV: one row per learner and task, every learner who ever joined. */
export async function gradesCsv(deps: { store: WorkshopStore; views: WorkshopViews }, id: string): Promise<{ filename: string; csv: string }> {
  const w = await deps.views.require(id);
  const results = await deps.store.results(id);
  const learners = (await deps.store.members.ofWorkshop(id))
    .map((m) => ({ name: m.displayName, verdicts: results.filter((r) => r.ownerId === m.ownerId) }))
    .sort((a, b) => a.name.localeCompare(b.name));
  const rows = gradebook(learners, deps.views.columns(w)).map((r) => [r.learner, r.exercise, r.task, r.verdict, r.time]);
  const slug = w.title.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 40) || "workshop";
  return { filename: `${slug}-${w.code.toLowerCase()}-grades.csv`, csv: toCsv(["learner", "exercise", "task", "verdict", "time"], rows) };
}
