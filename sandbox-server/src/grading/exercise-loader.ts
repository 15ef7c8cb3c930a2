import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import yaml from "js-yaml";
import { exerciseSchema, type Exercise } from "./exercise-schema.ts";

export class ExerciseError extends Error {}

/**
 * Reads every content/exercises/*.yaml. An author's mistake stops the server (and the site
 * build) with the file, the field and what to write instead.
 */
export function loadExercises(dir: string): Map<string, Exercise> {
  const exercises = new Map<string, Exercise>();
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith(".yaml") || f.endsWith(".yml")).sort();
  } catch {
    return exercises;
  }
  for (const file of files) {
    const full = path.join(dir, file);
    const exercise = parseExercise(readFileSync(full, "utf8"), full);
    const expectedId = file.replace(/\.ya?ml$/, "");
    if (exercise.id !== expectedId) {
      throw new ExerciseError(`${full}: id "${exercise.id}" must match the file name; write id: ${expectedId}`);
    }
    exercises.set(exercise.id, exercise);
  }
  return exercises;
}

export function parseExercise(text: string, file: string): Exercise {
  let raw: unknown;
  try {
    raw = yaml.load(text);
  } catch (e) {
    const mark = (e as { mark?: { line: number; column: number } }).mark;
    const where = mark ? `:${mark.line + 1}:${mark.column + 1}` : "";
    throw new ExerciseError(`${file}${where}: this is not valid YAML: ${(e as Error).message.split("\n")[0]}`);
  }
  const parsed = exerciseSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => {
      const field = i.path.length ? i.path.join(".") : "(top level)";
      const line = lineOf(text, i.path);
      return `  ${file}${line ? `:${line}` : ""}: ${field}: ${i.message}`;
    });
    throw new ExerciseError(`The exercise ${file} has mistakes:\n${lines.join("\n")}`);
  }
  return parsed.data;
}

/**
 * Best-effort line number of the deepest part of the path that can be found, for editors to jump
 * to: each key is looked for after its parent's line (block or flow style: `check: { state: x }`),
 * and a list index counts the parent's `- ` items.
 */
function lineOf(text: string, issuePath: PropertyKey[]): number | undefined {
  const lines = text.split("\n");
  let from = 0;
  let found: number | undefined;
  for (const part of issuePath) {
    let idx = -1;
    if (typeof part === "number") {
      const items = lines.map((l, i) => ({ i, m: /^(\s*)-\s/.exec(l) })).filter((x) => x.i > from && x.m);
      const indent = items[0]?.m?.[1]?.length;
      idx = items.filter((x) => x.m?.[1]?.length === indent)[part]?.i ?? -1;
    } else if (typeof part === "string") {
      const key = new RegExp(`(^|[\\s{,-])${part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\s*:`);
      idx = lines.findIndex((l, i) => i >= from && key.test(l));
    }
    if (idx < 0) break;
    from = idx;
    found = idx + 1;
  }
  return found;
}
