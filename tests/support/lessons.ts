import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import yaml from "js-yaml";
import type { SandboxRuntime } from "../../sandbox-server/src/runtime/types.ts";
import { repoRoot } from "./server.ts";

/**
 * What lesson CI needs from a lesson's MDX, read the way the site reads it: the frontmatter (order,
 * exercises, the files placed in the sandbox when the lesson opens) and the commands of its
 * "Clean up" section, which a learner runs with the Run buttons at the end of the lesson.
 */
export interface LessonForCi {
  slug: string;
  order: number;
  exercises: string[];
  files: Array<{ path: string; content: string }>;
  cleanup: string[];
  draft: boolean;
}

const lessonsDir = path.join(repoRoot, "content", "lessons");

export function loadLessonsForCi(): LessonForCi[] {
  return readdirSync(lessonsDir)
    .filter((f) => f.endsWith(".mdx") && !f.startsWith("_"))
    .map((f) => readLesson(f.replace(/\.mdx$/, "")))
    .sort((a, b) => a.order - b.order);
}

export function readLesson(slug: string): LessonForCi {
  const file = path.join(lessonsDir, `${slug}.mdx`);
  const source = readFileSync(file, "utf8");
  const fm = /^---\n([\s\S]*?)\n---\n/.exec(source);
  if (!fm) throw new Error(`${file}: no frontmatter`);
  const data = yaml.load(fm[1]!) as { order: number; exercises?: string[]; files?: Array<{ path: string; content?: string; from?: string }>; draft?: boolean };
  const files = (data.files ?? []).map((f) => ({
    path: f.path,
    content: f.content ?? readFileSync(path.resolve(path.dirname(file), f.from!), "utf8"),
  }));
  return { slug, order: data.order, exercises: data.exercises ?? [], files, cleanup: cleanupCommands(source), draft: data.draft === true };
}

/** The Run blocks of the `## Clean up` section (up to the next `## ` heading), in page order. */
export function cleanupCommands(source: string): string[] {
  const start = source.search(/^## Clean up\s*$/m);
  if (start < 0) return [];
  const rest = source.slice(start + 1);
  const end = rest.search(/^## /m);
  const section = end < 0 ? rest : rest.slice(0, end);
  const commands: Array<{ at: number; cmd: string }> = [];
  for (const m of section.matchAll(/<Run(?:\s+[a-z]+(?:="[^"]*")?)*\s*>([\s\S]*?)<\/Run>/g)) commands.push({ at: m.index, cmd: m[1]!.trim() });
  for (const m of section.matchAll(/<Run\s+cmd=(?:"([^"]*)"|\{"((?:[^"\\]|\\.)*)"\})\s*\/>/g)) {
    commands.push({ at: m.index, cmd: m[1] ?? JSON.parse(`"${m[2]}"`) });
  }
  return commands.sort((a, b) => a.at - b.at).map((c) => c.cmd);
}

/** Places a lesson's frontmatter files in the sandbox, as the site does when the lesson opens. */
export async function placeLessonFiles(runtime: SandboxRuntime, sandboxId: string, lesson: LessonForCi): Promise<void> {
  for (const f of lesson.files) {
    const r = await runtime.exec(sandboxId, ["bash", "-c", 'mkdir -p "$(dirname "$P")" && printf %s "$B64" | base64 -d > "$P"'], {
      env: [`P=${f.path}`, `B64=${Buffer.from(f.content).toString("base64")}`],
      timeoutMs: 30_000,
    });
    if (r.exitCode !== 0) throw new Error(`placing ${f.path}: ${r.stderr}`);
  }
}

/** Runs a bash script as a learner's shell would (HOME=/root), failing on the first error. */
export async function runScript(runtime: SandboxRuntime, sandboxId: string, script: string) {
  return runtime.exec(sandboxId, ["bash", "-euo", "pipefail", "-c", script], { timeoutMs: 300_000, env: ["HOME=/root"] });
}

/** The lessons `npm run lesson-ci -- <slug>...` named (SHIPSHAPE_LESSONS), or every lesson. */
export function lessonSelected(slug: string): boolean {
  const named = process.env.SHIPSHAPE_LESSONS;
  return !named || named.split(",").includes(slug);
}
