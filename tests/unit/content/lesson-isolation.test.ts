import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadExercises } from "../../../sandbox-server/src/content/exercise-loader.ts";
import { loadLessonsForCi } from "../../support/lessons.ts";

/**
 * One sandbox serves a learner through the whole course, so a lesson must not trip over what
 * another left behind. Statically: every container name and every host port a lesson uses (in its
 * text and in its exercises: checks, solutions, hints, wrong attempts) belongs to that lesson only,
 * and every lesson ends with a "Clean up" section a learner can run. Lesson CI's course run
 * (tests/lessons/course.test.ts) proves the same against a real engine.
 */
const repoRoot = path.resolve(import.meta.dirname, "../../..");
const lessons = loadLessonsForCi().filter((l) => !l.draft);
const exercises = loadExercises(path.join(repoRoot, "content", "exercises"));

function namesAndPorts(text: string): { names: Set<string>; ports: Set<number> } {
  const names = new Set<string>();
  const ports = new Set<number>();
  for (const m of text.matchAll(/--name[ =]([a-z0-9][a-z0-9_.-]*)/g)) names.add(m[1]!);
  // -p 8080:80, -p 127.0.0.1:8080:80, and Compose's "8080:80"
  for (const m of text.matchAll(/-p (?:127\.0\.0\.1:)?(\d{2,5}):\d+|"(\d{2,5}):\d+"/g)) ports.add(Number(m[1] ?? m[2]));
  return { names, ports };
}

const usage = lessons.map((lesson) => {
  const text = [readFileSync(path.join(repoRoot, "content", "lessons", `${lesson.slug}.mdx`), "utf8")];
  const { names, ports } = namesAndPorts(text.join("\n"));
  for (const id of lesson.exercises) {
    const e = exercises.get(id)!;
    const found = namesAndPorts([e.solution, e.setup ?? "", ...e.wrongAttempts.map((w) => w.script), ...e.tasks.flatMap((t) => t.hints)].join("\n"));
    for (const n of found.names) names.add(n);
    for (const p of found.ports) ports.add(p);
    for (const t of e.tasks) {
      const c = t.check;
      if ((c.kind === "container" || c.kind === "no-containers") && c.name) names.add(c.name);
      if (c.kind === "http") ports.add(c.port);
      if (c.kind === "container") for (const p of c.publishes ?? []) if (p.hostPort) ports.add(p.hostPort);
    }
  }
  return { slug: lesson.slug, names, ports };
});

describe("lessons do not break each other", () => {
  it("no container name is used by two lessons", () => {
    const owners = new Map<string, string[]>();
    for (const u of usage) for (const n of u.names) owners.set(n, [...(owners.get(n) ?? []), u.slug]);
    expect([...owners].filter(([, l]) => l.length > 1).map(([n, l]) => `${n}: ${l.join(", ")}`)).toEqual([]);
  });

  it("no host port is published by two lessons", () => {
    const owners = new Map<number, string[]>();
    for (const u of usage) for (const p of u.ports) owners.set(p, [...(owners.get(p) ?? []), u.slug]);
    expect([...owners].filter(([, l]) => l.length > 1).map(([p, l]) => `${p}: ${l.join(", ")}`)).toEqual([]);
  });

  for (const lesson of lessons) {
    it(`${lesson.slug} ends with a "## Clean up" section a learner can run`, () => {
      expect(lesson.cleanup.length).toBeGreaterThan(0);
    });
  }
});
