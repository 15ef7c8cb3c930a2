import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import yaml from "js-yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SANDBOX_START_TIMEOUT_MS, endSession, launchBrowser, newContext, readyTerminal, repoRoot, startServer, visit, type RunningServer } from "./harness.ts";

/**
 * Smoke test of the whole course: every lesson page opens, shows its title, connects its first
 * terminal to a prompt, and shows each exercise it embeds with a Check button. One learner, one
 * sandbox, page after page, as someone working through the course would.
 */

interface LessonSource {
  slug: string;
  title: string;
  order: number;
  terminals: string[];
  exercises: string[];
}

function courseLessons(): LessonSource[] {
  const dir = path.join(repoRoot, "content", "lessons");
  return readdirSync(dir)
    .filter((f) => f.endsWith(".mdx") && !f.startsWith("_"))
    .map((file) => {
      const text = readFileSync(path.join(dir, file), "utf8");
      const front = yaml.load(/^---\n([\s\S]*?)\n---/.exec(text)?.[1] ?? "") as { title: string; order: number; terminals?: string[]; draft?: boolean };
      return {
        slug: file.replace(/\.mdx$/, ""),
        title: front.title,
        order: front.order,
        terminals: front.terminals ?? ["main"],
        draft: front.draft === true,
        exercises: [...text.matchAll(/<Exercise\s+id="([^"]+)"/g)].map((m) => m[1]!),
      };
    })
    .filter((l) => !l.draft)
    .sort((a, b) => a.order - b.order);
}

describe("course", () => {
  let server: RunningServer;
  let browser: Browser;
  let page: Page;
  const lessons = courseLessons();

  beforeAll(async () => {
    server = await startServer();
    browser = await launchBrowser();
    page = await (await newContext(browser, server.url)).newPage();
  });

  afterAll(async () => {
    if (page) await endSession(page);
    await browser?.close();
    await server?.stop();
  });

  it(
    "opens every lesson with a terminal prompt and its exercises",
    async () => {
      expect(lessons.length).toBeGreaterThanOrEqual(15);
      for (const [i, lesson] of lessons.entries()) {
        await visit(page, `/lessons/${lesson.slug}/`);
        await expect(page.locator("h1").textContent(), lesson.slug).resolves.toBe(lesson.title);
        if (lesson.terminals.length > 0) {
          // The first page starts the sandbox; the others attach to it.
          await readyTerminal(page, lesson.terminals[0]!, i === 0 ? SANDBOX_START_TIMEOUT_MS : 30_000);
        }
        const shown = await page.locator("[data-exercise]").evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.exerciseId));
        expect(shown, `exercises on ${lesson.slug}`).toEqual(lesson.exercises);
        for (const id of lesson.exercises) {
          await expect(page.locator(`[data-exercise-id="${id}"] [data-check]`).count(), `Check button of ${id}`).resolves.toBe(1);
        }
      }
    },
    SANDBOX_START_TIMEOUT_MS + 40_000 * 15,
  );
});
