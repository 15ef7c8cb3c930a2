/**
 * Lesson progress in this browser's localStorage: which lessons were opened, and which the learner
 * marked as done by hand (lessons without graded exercises). Keys are lesson slugs. Passes of
 * graded exercises are never kept here: they come from the server (graded-progress.ts).
 */
import type { LearnerProgress } from "../../../contracts/progress-api.ts";
import { describeCompletion, lessonCompletion, loadServerProgress } from "./graded-progress.ts";

export const PROGRESS_STORAGE_KEY = "shipshape:progress:v1";

export interface LessonProgress {
  visitedAt?: number;
  completedAt?: number;
}

export type ProgressMap = Record<string, LessonProgress>;

export function readProgress(): ProgressMap {
  try {
    const parsed: unknown = JSON.parse(localStorage.getItem(PROGRESS_STORAGE_KEY) ?? "{}");
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? (parsed as ProgressMap) : {};
  } catch {
    return {};
  }
}

function update(slug: string, change: (entry: LessonProgress) => LessonProgress): ProgressMap {
  const progress = readProgress();
  progress[slug] = change(progress[slug] ?? {});
  try {
    localStorage.setItem(PROGRESS_STORAGE_KEY, JSON.stringify(progress));
  } catch {
    // Storage full or disabled: progress is simply not remembered.
  }
  return progress;
}

export function markVisited(slug: string): void {
  update(slug, (entry) => ({ ...entry, visitedAt: entry.visitedAt ?? Date.now() }));
}

export function setCompleted(slug: string, completed: boolean): void {
  update(slug, (entry) => {
    const { completedAt: _dropped, ...rest } = entry;
    return completed ? { ...rest, completedAt: Date.now() } : rest;
  });
}

// ---- completion shown on the course outline --------------------------------------------------

/**
 * Paints every `[data-course-outline] [data-lesson-slug]` item. A lesson with graded exercises
 * (`data-exercises` > 0, counted at build) is done only when the server says all of them passed;
 * a lesson without any keeps the learner's own "mark as done" from this browser.
 */
export function showOutlineProgress(root: ParentNode = document): void {
  const items = [...root.querySelectorAll<HTMLElement>("[data-course-outline] [data-lesson-slug]")];
  const paint = (server: LearnerProgress | undefined) => {
    const local = readProgress();
    for (const item of items) {
      const slug = item.dataset.lessonSlug ?? "";
      const graded = Number(item.dataset.exercises ?? 0) > 0;
      const entry = local[slug];
      let state: "none" | "started" | "done" = entry?.visitedAt ? "started" : "none";
      let text = state === "started" ? "Started" : "";
      if (!graded && entry?.completedAt) {
        state = "done";
        text = "Done";
      }
      const completion = graded && server ? lessonCompletion(server, slug) : undefined;
      if (completion) {
        if (completion.state === "done") state = "done";
        else if (completion.state === "started") state = "started";
        text = state === "none" ? "" : describeCompletion(completion);
      }
      item.dataset.progress = state;
      const label = item.querySelector<HTMLElement>("[data-progress-text]");
      if (label) label.textContent = text;
    }
  };
  paint(undefined);
  if (items.some((item) => Number(item.dataset.exercises ?? 0) > 0)) void loadServerProgress().then(paint);
}
