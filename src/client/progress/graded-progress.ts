/**
 * The learner's graded progress, as the server recorded it (`GET /api/progress`). Passes come only
 * from here: the server writes them when it grades a Check or judges a quiz answer, and nothing on
 * the page can report one. Components subscribe with `onServerProgress`; after a Check or an answer
 * they call `refreshServerProgress()` so every part of the page (exercise, lesson status) agrees.
 */
import type { LearnerProgress } from "../../../contracts/progress-api.ts";

export type LessonState = "none" | "started" | "done";

export interface LessonCompletion {
  state: LessonState;
  /** Exercises of the lesson, and how many of them passed. */
  exercises: number;
  passed: number;
}

/**
 * A lesson with exercises is done when all of them passed, started when any was checked.
 * A lesson without exercises has no server verdict: `undefined` (the manual "mark as done" applies).
 */
export function lessonCompletion(progress: LearnerProgress, slug: string): LessonCompletion | undefined {
  const mine = progress.exercises.filter((e) => e.lesson === slug);
  if (mine.length === 0) return undefined;
  const passed = mine.filter((e) => e.passed).length;
  const checked = mine.some((e) => e.tasks.some((t) => t.attempts > 0));
  return { state: passed === mine.length ? "done" : passed > 0 || checked ? "started" : "none", exercises: mine.length, passed };
}

export function describeCompletion(c: LessonCompletion): string {
  if (c.state === "done") return c.exercises === 1 ? "Done: exercise passed" : `Done: all ${c.exercises} exercises passed`;
  return `${c.passed} of ${c.exercises} exercise${c.exercises === 1 ? "" : "s"} passed`;
}

type Listener = (progress: LearnerProgress) => void;
const listeners = new Set<Listener>();
let current: Promise<LearnerProgress | undefined> | undefined;
let latest: LearnerProgress | undefined;

function isProgress(value: unknown): value is LearnerProgress {
  const v = value as Partial<LearnerProgress> | null;
  return typeof v === "object" && v !== null && Array.isArray(v.exercises);
}

/** A dropped connection or a busy server gets a few more tries, a second or so apart. */
const RETRY_DELAYS_MS = [500, 1_500, 4_000];

async function fetchProgress(): Promise<LearnerProgress | undefined> {
  for (let attempt = 0; ; attempt++) {
    let retry = false;
    try {
      const response = await fetch("/api/progress", { credentials: "same-origin", cache: "no-store" });
      retry = response.status >= 500;
      if (response.ok) {
        const body: unknown = await response.json();
        if (!isProgress(body)) return undefined;
        const progress = { exercises: body.exercises, quizzes: Array.isArray(body.quizzes) ? body.quizzes : [] };
        latest = progress;
        for (const listener of listeners) listener(progress);
        return progress;
      }
    } catch {
      retry = true;
    }
    const delay = RETRY_DELAYS_MS[attempt];
    // Still nothing (offline, or no server behind a static preview): the page shows no progress.
    if (!retry || delay === undefined) return undefined;
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

/** The progress, fetched once per page; `undefined` when the server cannot be asked. */
export function loadServerProgress(): Promise<LearnerProgress | undefined> {
  current ??= fetchProgress();
  return current;
}

/** Asks the server again (after a Check or an answer) and tells every subscriber. */
export function refreshServerProgress(): Promise<LearnerProgress | undefined> {
  current = fetchProgress();
  return current;
}

/** Calls `listener` with every progress the page receives, starting with the current one if known. */
export function onServerProgress(listener: Listener): () => void {
  listeners.add(listener);
  if (latest) listener(latest);
  else void loadServerProgress();
  return () => listeners.delete(listener);
}
