import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { ContentError } from "../../../sandbox-server/src/content/content-files.ts";
import { loadQuizzes, parseQuiz } from "../../../sandbox-server/src/content/quiz-loader.ts";
import { publicQuiz, quizSchema } from "../../../contracts/content/quiz-schema.ts";

const repoRoot = path.resolve(import.meta.dirname, "../../..");

const good = {
  id: "container-vs-vm",
  lesson: "first-containers",
  question: "Why does a container start faster than a virtual machine?",
  options: ["Better compression", "Nothing has to boot"],
  correct: 1,
  explanation: "A container is a process on the host's kernel.",
};

function issues(value: unknown) {
  const result = quizSchema.safeParse(value);
  if (result.success) throw new Error("expected the quiz to be rejected");
  return result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
}

describe("quiz schema", () => {
  it("accepts a good quiz as it is", () => {
    expect(quizSchema.parse(good)).toEqual(good);
  });

  it("counts the right option from 0 and rejects one past the end, saying how many there are", () => {
    expect(issues({ ...good, correct: 2 })).toEqual([expect.stringMatching(/^correct: is 2, but there are only 2 options \(0 to 1\); it counts from 0/)]);
    expect(issues({ ...good, correct: -1 })).toEqual([expect.stringMatching(/^correct: counts from 0/)]);
    expect(issues({ ...good, correct: 0.5 })).toEqual([expect.stringMatching(/^correct: must be a whole number/)]);
  });

  it("needs two to six distinct, non-empty options", () => {
    expect(issues({ ...good, options: ["Only one"], correct: 0 })).toEqual(["options: give at least two options"]);
    expect(issues({ ...good, options: ["a", "b", "c", "d", "e", "f", "g"] })).toEqual([expect.stringMatching(/^options: give at most six/)]);
    expect(issues({ ...good, options: ["Same", "Same"] })).toEqual(['options.1: "Same" is listed twice']);
    expect(issues({ ...good, options: ["Fine", "  "] })).toEqual(["options.1: an option is empty"]);
  });

  it("rejects unknown fields, so a misspelt `explaination` is not silently dropped", () => {
    const { explanation, ...rest } = good;
    const found = issues({ ...rest, explaination: explanation });
    expect(found.some((i) => i.startsWith("explanation:"))).toBe(true);
    expect(found.some((i) => /explaination/.test(i))).toBe(true);
  });

  it("wants a kebab-case id and a lesson", () => {
    expect(issues({ ...good, id: "Container VM" })[0]).toMatch(/^id: a kebab-case id/);
    expect(issues({ ...good, lesson: undefined }).some((i) => i.startsWith("lesson:"))).toBe(true);
  });

  it("describes every field, so the schema is the authoring reference", () => {
    const fields = Object.entries((quizSchema as unknown as z.ZodObject).shape);
    expect(fields.map(([key]) => key)).toEqual(["id", "lesson", "question", "options", "correct", "explanation"]);
    for (const [key, field] of fields) {
      expect((field as z.ZodType).description, `${key} has a description`).toBeTruthy();
    }
  });

  it("keeps the right option and the explanation out of what a page may show", () => {
    const shown = publicQuiz(quizSchema.parse(good));
    expect(shown).toEqual({ id: good.id, lesson: good.lesson, question: good.question, options: good.options });
    expect(JSON.stringify(shown)).not.toContain("kernel");
  });
});

describe("quiz files", () => {
  it("parse with the file, the line and the field in the error", () => {
    const text = "id: q\nlesson: l\nquestion: Why?\noptions: [a, b]\ncorrect: 5\nexplanation: Because.\n";
    expect(() => parseQuiz(text, "content/quizzes/q.yaml")).toThrow(ContentError);
    expect(() => parseQuiz(text, "content/quizzes/q.yaml")).toThrow(/content\/quizzes\/q\.yaml:5: correct: is 5/);
    expect(() => parseQuiz("id: [", "x.yaml")).toThrow(/x\.yaml:\d+:\d+: this is not valid YAML/);
  });

  it("load from a folder, with ids that must match the file names", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "quizzes-"));
    try {
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, "one.yaml"), "id: one\nlesson: l\nquestion: Why?\noptions: [a, b]\ncorrect: 0\nexplanation: Because.\n");
      writeFileSync(path.join(dir, "_draft.yaml"), "not: a quiz\n");
      expect([...loadQuizzes(dir).keys()]).toEqual(["one"]);
      writeFileSync(path.join(dir, "two.yaml"), "id: three\nlesson: l\nquestion: Why?\noptions: [a, b]\ncorrect: 0\nexplanation: Because.\n");
      expect(() => loadQuizzes(dir)).toThrow(/id "three" must match the file name; write id: two/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(loadQuizzes(path.join(dir, "missing")).size).toBe(0);
  });

  it("in content/quizzes are all valid", () => {
    const quizzes = loadQuizzes(path.join(repoRoot, "content", "quizzes"));
    expect([...quizzes.keys()]).toEqual(expect.arrayContaining(["container-vs-vm", "image-vs-container", "cmd-vs-entrypoint"]));
  });
});
