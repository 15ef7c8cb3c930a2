import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadExercises } from "../../sandbox-server/src/content/exercise-loader.ts";
import { loadQuizzes } from "../../sandbox-server/src/content/quiz-loader.ts";
import { decodeEntities } from "../../src/lib/code-text.ts";
import {
  SANDBOX_START_TIMEOUT_MS,
  endSession,
  launchBrowser,
  newContext,
  readyTerminal,
  repoRoot,
  startServer,
  typeLine,
  visit,
  waitForTerminalText,
  type RunningServer,
} from "./harness.ts";

/**
 * Graded exercises and quizzes on a real lesson page, against the real server and sandbox: the
 * learner checks, reads hints, does the work in the terminal, passes, reloads, and sees the lesson
 * done on the home page. Every pass shown comes from the server.
 */
describe("exercises and quizzes on a lesson page", () => {
  let server: RunningServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const exercise = () => page.locator('[data-exercise-id="run-and-stop"]');
  const task = (id: string) => exercise().locator(`[data-task-id="${id}"]`);
  const status = () => exercise().getByRole("status");

  beforeAll(async () => {
    server = await startServer();
    browser = await launchBrowser();
    context = await newContext(browser, server.url);
    page = await context.newPage();
    await visit(page, "/lessons/first-containers/");
    await readyTerminal(page, "main");
  }, SANDBOX_START_TIMEOUT_MS + 60_000);

  afterAll(async () => {
    if (page) await endSession(page);
    await browser?.close();
    await server?.stop();
  });

  it("checks on the server, shows each task's verdict and sentence, and is busy while it runs", async () => {
    // Hold the answer back a little, so the busy state can be seen and a second press tried.
    const checks: string[] = [];
    await page.route("**/api/exercises/*/check", async (route) => {
      checks.push(route.request().url());
      await new Promise((resolve) => setTimeout(resolve, 700));
      await route.continue();
    });
    const button = exercise().getByRole("button", { name: "Check" });
    await button.click();
    await expect.poll(() => button.getAttribute("aria-disabled")).toBe("true");
    await expect(button.textContent()).resolves.toContain("Checking…");
    await expect(exercise().getAttribute("aria-busy")).resolves.toBe("true");
    await button.click({ force: true });

    await expect.poll(() => task("cache-stopped").getAttribute("data-result"), { timeout: 60_000 }).toBe("fail");
    await expect(task("busybox-said").getAttribute("data-result")).resolves.toBe("fail");
    await expect(task("cache-stopped").locator("[data-task-message]").textContent()).resolves.toBe("There is no container named `first-cache` yet.");
    await expect(status().textContent()).resolves.toMatch(/^0 of 2 tasks pass\. Not yet: /);
    await expect(button.getAttribute("aria-disabled")).resolves.toBeNull();
    expect(checks).toHaveLength(1);
    await page.unroute("**/api/exercises/*/check");
  }, 120_000);

  it("reveals hints one at a time, and keeps keyboard focus on the last one", async () => {
    const hints = task("cache-stopped").locator("[data-hint]");
    await expect(hints.count()).resolves.toBe(2);
    await expect(hints.first().isVisible()).resolves.toBe(false);
    await task("cache-stopped").getByRole("button", { name: "Show a hint (1 of 2)" }).click();
    await expect(hints.first().textContent()).resolves.toContain("docker run -d --name NAME IMAGE");
    await expect(hints.nth(1).isVisible()).resolves.toBe(false);
    const next = task("cache-stopped").getByRole("button", { name: "Show another hint (2 of 2)" });
    await next.focus();
    await page.keyboard.press("Enter");
    await expect(hints.nth(1).isVisible()).resolves.toBe(true);
    await expect(next.isVisible()).resolves.toBe(false);
    await expect(page.evaluate(() => document.activeElement?.hasAttribute("data-hint"))).resolves.toBe(true);
  });

  it("passes once the learner has done the work in the terminal", async () => {
    await typeLine(page, "main", "docker run -d --name first-cache redis:7 && docker stop first-cache && docker run busybox echo Containers are processes");
    // busybox's line, then the next prompt.
    await waitForTerminalText(page, "main", /^Containers are processes$[\s\S]*sandbox:/m, 120_000);
    await exercise().getByRole("button", { name: "Check" }).click();
    await expect.poll(() => task("cache-stopped").getAttribute("data-result"), { timeout: 60_000 }).toBe("pass");
    await expect(task("busybox-said").getAttribute("data-result")).resolves.toBe("pass");
    await expect(status().textContent()).resolves.toBe("All 2 tasks pass. Well done!");
    await expect.poll(() => exercise().locator("[data-exercise-badge]").isVisible()).toBe(true);
    await expect.poll(() => page.locator(".lesson-header [data-lesson-progress]").textContent(), { timeout: 10_000 }).toContain("1 of 2 exercises passed");
  }, 240_000);

  it("still shows the pass after a reload, read from the server and not from this browser", async () => {
    const progress = page.waitForResponse((r) => r.url().endsWith("/api/progress"));
    await visit(page);
    await progress;
    await expect.poll(() => task("cache-stopped").getAttribute("data-result")).toBe("pass");
    await expect(task("busybox-said").getAttribute("data-result")).resolves.toBe("pass");
    await expect(exercise().locator("[data-exercise-badge]").isVisible()).resolves.toBe(true);
    await expect(status().textContent()).resolves.toBe("You passed this exercise.");
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }));
    expect(stored).not.toContain("run-and-stop");

    // The same page, told by "the server" that nothing passed, shows nothing passed.
    await page.route("**/api/progress", (route) =>
      route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify({ exercises: [], quizzes: [] }) }),
    );
    await visit(page);
    await page.waitForTimeout(500);
    await expect(task("cache-stopped").getAttribute("data-result")).resolves.toBe("none");
    await expect(exercise().locator("[data-exercise-badge]").isVisible()).resolves.toBe(false);
    await page.unroute("**/api/progress");
    await visit(page);
    await readyTerminal(page, "main");
  }, SANDBOX_START_TIMEOUT_MS);

  it("marks the lesson done, on its page and in the course outline, when all its exercises passed", async () => {
    const tidy = page.locator('[data-exercise-id="tidy-up"]');
    await typeLine(page, "main", "docker run -d --name sleeper busybox sleep 3600 && docker container prune -f");
    await waitForTerminalText(page, "main", /^Total reclaimed space/m, 120_000);
    await tidy.getByRole("button", { name: "Check" }).click();
    await expect.poll(() => tidy.getAttribute("data-state"), { timeout: 60_000 }).toBe("done");
    await expect(page.locator(".lesson-header [data-lesson-progress]").getAttribute("data-state")).resolves.toBe("done");
    await expect(page.locator(".lesson-footer [data-lesson-progress]").textContent()).resolves.toContain("Done: all 2 exercises passed");

    await visit(page, "/");
    const item = page.locator('[data-course-outline] [data-lesson-slug="first-containers"]');
    await expect.poll(() => item.getAttribute("data-progress")).toBe("done");
    await expect(item.locator("[data-progress-text]").textContent()).resolves.toBe("Done: all 2 exercises passed");
    await expect(page.locator('[data-lesson-slug="images-and-layers"]').getAttribute("data-progress")).resolves.not.toBe("done");
  }, 240_000);

  it("cannot be made to show a pass the server did not grade", async () => {
    const forged = await page.evaluate(async () => {
      const post = (url: string, body: unknown) =>
        fetch(url, { method: "POST", credentials: "same-origin", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      const pass = { exerciseId: "tag-a-version", passed: true, tasks: [{ taskId: "pinned-pulled", passed: true }, { taskId: "own-tag", passed: true }] };
      const statuses = [(await post("/api/progress", { exercises: [pass] })).status, (await post("/api/results", pass)).status];
      // Check ignores what the browser says and grades the sandbox, where nothing was done.
      const check = (await (await post("/api/exercises/tag-a-version/check", pass)).json()) as { passed: boolean };
      const progress = (await (await fetch("/api/progress", { credentials: "same-origin" })).json()) as {
        exercises: Array<{ exerciseId: string; passed: boolean }>;
      };
      return { statuses, checked: check.passed, recorded: progress.exercises.find((e) => e.exerciseId === "tag-a-version")?.passed };
    });
    expect(forged).toEqual({ statuses: [404, 404], checked: false, recorded: false });
    await visit(page, "/lessons/images-and-layers/");
    const tag = page.locator('[data-exercise-id="tag-a-version"]');
    await expect.poll(() => tag.locator('[data-task-id="pinned-pulled"]').getAttribute("data-result")).toBe("fail");
    await expect(tag.getAttribute("data-state")).resolves.toBe("open");
  });

  it("judges a quiz answer on the server, explains it, and remembers a right one", async () => {
    await visit(page, "/lessons/first-containers/");
    const quiz = page.locator('[data-quiz-id="container-vs-vm"]');
    const radios = quiz.getByRole("radio");
    await expect(radios.count()).resolves.toBe(4);
    await radios.first().check();
    await quiz.getByRole("button", { name: "Answer" }).click();
    await expect.poll(() => quiz.getAttribute("data-result")).toBe("wrong");
    await expect(quiz.getByRole("status").textContent()).resolves.toMatch(/^Not quite\. Have another look\.A virtual machine boots a kernel/);

    // By keyboard: arrows move the choice, Tab reaches Answer, Enter answers.
    await radios.first().focus();
    await page.keyboard.press("ArrowDown");
    await expect(radios.nth(1).isChecked()).resolves.toBe(true);
    await page.keyboard.press("Tab");
    await page.keyboard.press("Enter");
    await expect.poll(() => quiz.getAttribute("data-result")).toBe("right");
    await expect(quiz.locator('[data-option][data-verdict="right"]').textContent()).resolves.toContain("nothing has to boot");

    await visit(page);
    await expect.poll(() => quiz.getAttribute("data-result")).toBe("right");
    await expect(radios.nth(1).isChecked()).resolves.toBe(true);
    await expect(quiz.locator("[data-quiz-badge]").isVisible()).resolves.toBe(true);
    const progress = await page.evaluate(() => fetch("/api/progress", { credentials: "same-origin" }).then((r) => r.json()));
    expect(progress.quizzes).toContainEqual(expect.objectContaining({ quizId: "container-vs-vm", passed: true, attempts: 2 }));
  });

  it("says why when a check cannot run, in the server's words", async () => {
    const fresh = await newContext(browser, server.url);
    // No terminal can start here, so this browser has no sandbox.
    await fresh.route("**/api/sessions**", (route) => route.fulfill({ status: 503, contentType: "application/json", body: "{}" }));
    await fresh.route("**/ws/**", (route) => route.abort());
    const other = await fresh.newPage();
    await visit(other, "/lessons/first-containers/");
    const ex = other.locator('[data-exercise-id="run-and-stop"]');
    await ex.getByRole("button", { name: "Check" }).click();
    await expect.poll(() => ex.locator("[data-exercise-status]").getAttribute("data-kind")).toBe("error");
    await expect(ex.getByRole("status").textContent()).resolves.toBe("You have no sandbox yet: open a terminal first.");
    await expect(ex.locator('[data-task-id="cache-stopped"]').getAttribute("data-result")).resolves.toBe("none");
    await fresh.close();
  });

  it("ships no reference solution, set-up script or right answer in the built site", () => {
    const dist = path.join(repoRoot, "dist");
    const files = (readdirSync(dist, { recursive: true }) as string[]).filter((f) => /\.(html|js|json)$/.test(f));
    const text = files.map((f) => decodeEntities(readFileSync(path.join(dist, f), "utf8"))).join("\n");
    expect(text).not.toMatch(/"solution"|"setup"|"correct"\s*:|"explanation"\s*:/);
    // Lessons and hints may show single commands of a solution; the whole script is never sent.
    for (const e of loadExercises(path.join(repoRoot, "content", "exercises")).values()) {
      for (const script of [e.solution, e.setup].filter((x): x is string => Boolean(x))) {
        expect(text.includes(script.trim()) || text.includes(JSON.stringify(script).slice(1, -1)), `${e.id}'s script`).toBe(false);
      }
    }
    for (const q of loadQuizzes(path.join(repoRoot, "content", "quizzes")).values()) {
      expect(text.includes(q.explanation.slice(0, 60)), `${q.id}'s explanation`).toBe(false);
    }
  });
});
