import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import yaml from "js-yaml";
import type { z } from "zod";

/** An author's mistake in content/: the message names the file, the line, the field and the fix. */
export class ContentError extends Error {}

/**
 * Reads every *.yaml of a content folder (files starting with `_` are ignored, as for lessons) into
 * a map by id. Each id must match its file name, so a lesson's reference is easy to follow.
 */
export function loadYamlFolder<T extends { id: string }>(dir: string, parse: (text: string, file: string) => T): Map<string, T> {
  const items = new Map<string, T>();
  let files: string[];
  try {
    files = readdirSync(dir)
      .filter((f) => (f.endsWith(".yaml") || f.endsWith(".yml")) && !f.startsWith("_"))
      .sort();
  } catch {
    return items;
  }
  for (const file of files) {
    const full = path.join(dir, file);
    const item = parse(readFileSync(full, "utf8"), full);
    const expectedId = file.replace(/\.ya?ml$/, "");
    if (item.id !== expectedId) throw new ContentError(`${full}: id "${item.id}" must match the file name; write id: ${expectedId}`);
    items.set(item.id, item);
  }
  return items;
}

/** Parses one YAML file against its schema; `what` names the kind ("exercise"), `reference` the file that describes its fields. */
export function parseYamlFile<S extends z.ZodType>(text: string, file: string, schema: S, what: string, reference: string): z.output<S> {
  let raw: unknown;
  try {
    raw = yaml.load(text);
  } catch (e) {
    const mark = (e as { mark?: { line: number; column: number } }).mark;
    const where = mark ? `:${mark.line + 1}:${mark.column + 1}` : "";
    throw new ContentError(`${file}${where}: this is not valid YAML: ${(e as Error).message.split("\n")[0]}`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => {
      const field = i.path.length ? i.path.join(".") : "(top level)";
      const line = lineOf(text, i.path);
      return `  ${file}${line ? `:${line}` : ""}: ${field}: ${i.message}`;
    });
    throw new ContentError(`The ${what} ${file} has mistakes (fields are described in ${reference}):\n${lines.join("\n")}`);
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
