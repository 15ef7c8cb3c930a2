import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ContentWatcher } from "../../../sandbox-server/src/content/content-watcher.ts";
import { loadExercises } from "../../../sandbox-server/src/content/exercise-loader.ts";
import { createLogger } from "../../../sandbox-server/src/log.ts";
import type { Exercise } from "../../../contracts/content/exercise-schema.ts";

/** npm run dev: an author edits an exercise and the running server grades with the new version. */
const exercise = (title: string) =>
  [
    "id: demo",
    "lesson: first-containers",
    `title: ${title}`,
    "tasks:",
    "  - id: first",
    "    title: The first task",
    "    check: { kind: container, image: nginx, state: running }",
    "solution: docker run -d nginx",
    "wrongAttempts:",
    "  - name: run it in the foreground",
    "    script: docker run --rm nginx true",
    "",
  ].join("\n");

describe("content watcher", () => {
  let watcher: ContentWatcher<Exercise> | undefined;
  let dir = "";
  afterEach(() => {
    watcher?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const until = async (test: () => boolean) => {
    for (let i = 0; i < 100 && !test(); i++) await new Promise((r) => setTimeout(r, 50));
    return test();
  };

  it("applies an edit to the map the services hold, and keeps the last good version when a file has a mistake", async () => {
    dir = mkdtempSync(path.join(tmpdir(), "shipshape-content-"));
    writeFileSync(path.join(dir, "demo.yaml"), exercise("First version"));
    const held = loadExercises(dir);
    const logs: Array<Record<string, unknown>> = [];
    watcher = new ContentWatcher({ dir, target: held, load: loadExercises, log: createLogger("debug", {}, (l) => logs.push(JSON.parse(l))) });

    writeFileSync(path.join(dir, "demo.yaml"), exercise("Second version"));
    expect(await until(() => held.get("demo")?.title === "Second version")).toBe(true);

    writeFileSync(path.join(dir, "demo.yaml"), exercise("Broken").replace("tasks:", "taskz:"));
    expect(await until(() => logs.some((l) => l.msg === "content has a mistake; keeping the last good version"))).toBe(true);
    expect(held.get("demo")?.title).toBe("Second version");
    const mistake = logs.find((l) => l.msg === "content has a mistake; keeping the last good version");
    expect(String(mistake?.error)).toContain("demo.yaml");

    writeFileSync(path.join(dir, "other.yaml"), exercise("Another").replace("id: demo", "id: other"));
    writeFileSync(path.join(dir, "demo.yaml"), exercise("Fixed"));
    expect(await until(() => held.get("demo")?.title === "Fixed" && held.has("other"))).toBe(true);
  });
});
