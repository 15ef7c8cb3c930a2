import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importScenario } from "../../sandbox-server/src/import-cli.ts";
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
 * An imported Killercoda scenario in the browser: the fixture scenario is imported into a content
 * folder of its own, the real site is built from it (SHIPSHAPE_CONTENT_DIR, the same variable the
 * server grades from) and served by the real server. The learner opens the lesson, finds the
 * scenario's starting state (assets at their targets, background.sh's container), clicks Run and
 * Check, and sees the step pass, graded by the scenario's own verify.sh.
 */
describe("an imported Killercoda scenario", () => {
  const work = mkdtempSync(path.join(tmpdir(), "shipshape-imported-site-"));
  const contentDir = path.join(work, "content");
  const siteDir = path.join(work, "site");
  let server: RunningServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const step = (n: number) => page.locator(`[data-exercise-id="build-from-assets-step${n}"]`);

  beforeAll(async () => {
    mkdirSync(path.join(contentDir, "quizzes"), { recursive: true });
    importScenario({ folder: path.join(repoRoot, "tests/fixtures/killercoda/build-from-assets"), contentDir, slug: "build-from-assets", order: 1 });
    const build = spawnSync(process.execPath, [path.join(repoRoot, "node_modules/astro/bin/astro.mjs"), "build", "--outDir", siteDir], {
      cwd: repoRoot,
      encoding: "utf8",
      env: { ...process.env, SHIPSHAPE_CONTENT_DIR: contentDir, ASTRO_TELEMETRY_DISABLED: "1" },
      timeout: 300_000,
    });
    if (build.status !== 0) throw new Error(`astro build of the imported lesson failed:\n${build.stdout}\n${build.stderr}`);
    server = await startServer({ env: { SHIPSHAPE_CONTENT_DIR: contentDir, SHIPSHAPE_SITE_DIR: siteDir } });
    browser = await launchBrowser();
    context = await newContext(browser, server.url);
    page = await context.newPage();
    await visit(page, "/lessons/build-from-assets/");
    await readyTerminal(page, "main");
  }, 300_000 + SANDBOX_START_TIMEOUT_MS + 60_000);

  afterAll(async () => {
    if (page) await endSession(page);
    await browser?.close();
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it("renders the steps, their Run buttons and the <details> hint", async () => {
    expect(await page.locator("h2").allTextContents()).toEqual(
      expect.arrayContaining(["Step 1: Build the image site from /root/app", "Step 2: Remove the old container"]),
    );
    expect(await page.locator("details summary").allTextContents()).toContain("Which containers are there?");
    expect(await page.locator("[data-run-button]").count()).toBe(3);
  });

  it("prepares the sandbox with the scenario's assets and background script, then types foreground.sh into the terminal", async () => {
    await expect.poll(() => step(1).getAttribute("data-setup"), { timeout: 120_000 }).toBe("ready");
    await waitForTerminalText(page, "main", /^Scenario ready\.$/m, 60_000);
    await typeLine(page, "main", "cat /root/app/index.html; docker ps --format 'running: {{.Names}}'");
    await waitForTerminalText(page, "main", /^<h1>Built from assets<\/h1>$/m);
    await waitForTerminalText(page, "main", /^running: old$/m);
  });

  it("clicks Run, presses Check and sees the step pass, graded by its verify.sh", async () => {
    const check = step(1).getByRole("button", { name: "Check" });
    await check.click();
    await expect.poll(() => step(1).locator('[data-task-id="verify"]').getAttribute("data-result"), { timeout: 60_000 }).toBe("fail");
    await expect(step(1).locator("[data-task-message]").textContent()).resolves.toBe(
      "Not done yet: Build the image site from /root/app. Follow the step above, then press Check again.",
    );

    const run = page.locator('[data-run][data-command="docker build -t site /root/app"]').getByRole("button", { name: /^Run/ });
    await run.click();
    // Typed behind the build, so it prints once the build is over.
    await typeLine(page, "main", "echo build-$?-finished");
    await waitForTerminalText(page, "main", /^build-0-finished$/m, 180_000);

    await check.click();
    await expect.poll(() => step(1).locator('[data-task-id="verify"]').getAttribute("data-result"), { timeout: 60_000 }).toBe("pass");
    await expect(step(1).getByRole("status").last().textContent()).resolves.toMatch(/All 1 tasks pass/);
  });

  it("keeps the starting state on reload: the setup does not run again", async () => {
    await typeLine(page, "main", "docker rm -f old && echo removed-old");
    await waitForTerminalText(page, "main", /^removed-old$/m);
    await visit(page);
    await readyTerminal(page, "main");
    await expect.poll(() => step(1).getAttribute("data-setup"), { timeout: 60_000 }).toBe("ready");
    const check = step(2).getByRole("button", { name: "Check" });
    await check.click();
    await expect.poll(() => step(2).locator('[data-task-id="verify"]').getAttribute("data-result"), { timeout: 60_000 }).toBe("pass");
  });
});
