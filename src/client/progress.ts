/**
 * Lesson progress, kept in this browser's localStorage for now (server-side progress comes with
 * grading). Keys are lesson slugs.
 */
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
