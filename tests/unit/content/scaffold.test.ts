import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import yaml from "js-yaml";
import { afterEach, describe, expect, it } from "vitest";
import { newExercise, newLesson, ScaffoldError } from "../../../sandbox-server/src/authoring/scaffold.ts";
import { loadExercises } from "../../../sandbox-server/src/content/exercise-loader.ts";
import { lessonSchema } from "../../../src/schemas/lesson.ts";

/** ./shipshape new lesson: what it writes is valid content that follows the course's rules. */
const repoRoot = path.resolve(import.meta.dirname, "../../..");

describe("lesson scaffold", () => {
  let dir = "";
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const content = () => {
    dir = mkdtempSync(path.join(tmpdir(), "shipshape-scaffold-"));
    cpSync(path.join(repoRoot, "content"), dir, { recursive: true });
    return dir;
  };

  it("writes a lesson and an exercise that the real schemas accept, placed after every lesson", () => {
    const dir = content();
    const written = newLesson(dir, "multi-stage-builds");
    expect(written.files.map((f) => path.relative(dir, f))).toEqual(["lessons/multi-stage-builds.mdx", "exercises/multi-stage-builds-first.yaml"]);
    const mdx = readFileSync(written.files[0]!, "utf8");
    const frontmatter = lessonSchema.parse(yaml.load(/^---\n([\s\S]*?)\n---/.exec(mdx)![1]!));
    expect(frontmatter.exercises).toEqual(["multi-stage-builds-first"]);
    // After the last lesson, whatever the course holds now (lessons are added in parallel branches).
    const lastOrder = Math.max(
      ...readdirSync(path.join(dir, "lessons"))
        .filter((f) => f.endsWith(".mdx") && f !== "multi-stage-builds.mdx")
        .map((f) => Number(/^order:\s*(\d+)/m.exec(readFileSync(path.join(dir, "lessons", f), "utf8"))?.[1] ?? 0)),
    );
    expect(lastOrder).toBeGreaterThanOrEqual(16);
    expect(frontmatter.order).toBe(lastOrder + 1);
    expect(mdx).toMatch(/<Exercise id="multi-stage-builds-first" \/>/);
    // The clean-up removes every name the lesson and its exercise use.
    const cleanup = mdx.slice(mdx.indexOf("## Clean up"));
    expect(cleanup).toContain("docker rm -f multi-stage-builds-demo multi-stage-builds-first-box");
    const exercise = loadExercises(path.join(dir, "exercises")).get("multi-stage-builds-first")!;
    expect(exercise.wrongAttempts.length).toBeGreaterThan(0);
    expect(exercise.solution).toContain("--name multi-stage-builds-first-box");
    expect(written.next.join("\n")).toContain("npm run lesson-ci -- multi-stage-builds");
  });

  it("refuses a name that is taken or not a slug, and an exercise for a lesson that does not exist, in words", () => {
    const dir = content();
    expect(() => newLesson(dir, "first-containers")).toThrow(/already exists/);
    expect(() => newLesson(dir, "My Lesson")).toThrow(ScaffoldError);
    expect(() => newLesson(dir, "My Lesson")).toThrow(/lowercase letters, digits and dashes/);
    expect(() => newExercise(dir, "extra", "no-such-lesson")).toThrow(/There is no lesson .*no-such-lesson\.mdx; create it first/);
    expect(path.relative(dir, newExercise(dir, "extra-step", "first-containers").files[0]!)).toBe("exercises/extra-step.yaml");
  });
});
