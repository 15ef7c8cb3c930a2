import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ContentError } from "../../../sandbox-server/src/content/content-files.ts";
import { loadExercises, parseExercise } from "../../../sandbox-server/src/content/exercise-loader.ts";

/** An author's broken exercise must fail the server's start (and lesson CI) with the file and line. */
const valid = [
  "id: demo",
  "lesson: first-containers",
  "title: A demo",
  "tasks:",
  "  - id: first",
  "    title: The first task",
  "    check: { kind: container, image: nginx, state: running }",
  "  - id: second",
  "    title: The second task",
  "    check:",
  "      kind: container",
  "      image: hello-world",
  "      state: exited",
  "solution: docker run -d nginx",
  "wrongAttempts:",
  "  - { name: nginx stopped at once, script: docker run nginx true, fails: [first] }",
  "",
];

function errorOf(text: string): string {
  try {
    parseExercise(text, "content/exercises/demo.yaml");
  } catch (e) {
    expect(e).toBeInstanceOf(ContentError);
    return (e as Error).message;
  }
  throw new Error("the exercise was accepted");
}

describe("exercise files with mistakes", () => {
  it("accepts the valid one", () => {
    expect(parseExercise(valid.join("\n"), "demo.yaml").tasks).toHaveLength(2);
  });

  it("names file, line and column of a YAML syntax error", () => {
    const text = [...valid];
    text[8] = "    title: [unclosed";
    expect(errorOf(text.join("\n"))).toMatch(/^content\/exercises\/demo\.yaml:\d+:\d+: this is not valid YAML/);
  });

  it("names the line of a bad value in a flow mapping", () => {
    const text = [...valid];
    text[6] = "    check: { kind: container, image: nginx, state: sleeping }";
    expect(errorOf(text.join("\n"))).toMatch(/content\/exercises\/demo\.yaml:7: tasks\.0\.check\.state:/);
  });

  it("names the line of a bad value in the second list item, not the first", () => {
    const text = [...valid];
    text[12] = "      state: sleeping";
    expect(errorOf(text.join("\n"))).toMatch(/content\/exercises\/demo\.yaml:13: tasks\.1\.check\.state:/);
  });

  it("names the file when a required field is missing", () => {
    expect(errorOf(valid.filter((l) => !l.startsWith("solution")).join("\n"))).toMatch(/content\/exercises\/demo\.yaml: solution:/);
  });

  it("names the file whose id does not match its name", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "shipshape-exercises-"));
    writeFileSync(path.join(dir, "other-name.yaml"), valid.join("\n"));
    expect(() => loadExercises(dir)).toThrow(/other-name\.yaml: id "demo" must match the file name; write id: other-name/);
  });
});
