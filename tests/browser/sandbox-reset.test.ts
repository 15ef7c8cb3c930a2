/**
 * "Reset my sandbox" in a real browser, on a lesson page: the learner leaves a file behind, asks for
 * a reset, confirms, watches the fresh sandbox start, and types into the same terminal, which
 * reconnected by itself to a sandbox without the file. The session (and with it the page's
 * credentials) stays the same.
 */
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { endSession, launchBrowser, newContext, readyTerminal, SANDBOX_START_TIMEOUT_MS, startServer, typeLine, visit, waitForTerminalText, type RunningServer } from "./harness.ts";

describe("reset my sandbox", () => {
  let server: RunningServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;

  beforeAll(async () => {
    server = await startServer();
    browser = await launchBrowser();
    context = await newContext(browser, server.url);
    page = await context.newPage();
  });

  afterAll(async () => {
    if (page) await endSession(page);
    await browser?.close();
    await server?.stop();
  });

  it(
    "asks first, shows the new sandbox starting, and the terminal comes back in a fresh sandbox",
    async () => {
      await visit(page, "/lessons/first-containers/");
      await readyTerminal(page, "main");
      const sessionBefore = await page.evaluate(() => fetch("/api/sessions/current").then((r) => r.json()).then((b: { sessionId: string }) => b.sessionId));
      await typeLine(page, "main", "touch /root/left-behind && echo LEFT-''BEHIND");
      await waitForTerminalText(page, "main", /^LEFT-BEHIND/m);

      await page.getByRole("button", { name: "Reset my sandbox" }).first().click();
      const dialog = page.getByRole("dialog", { name: "Reset your sandbox?" });
      await expect(dialog.textContent()).resolves.toMatch(/Your progress in the course is kept/);
      // Cancel keeps everything.
      await dialog.getByRole("button", { name: "Cancel" }).click();
      await expect(dialog.isVisible()).resolves.toBe(false);

      await page.getByRole("button", { name: "Reset my sandbox" }).first().click();
      await dialog.getByRole("button", { name: "Reset my sandbox" }).click();
      await expect.poll(() => dialog.locator("[data-reset-status]").textContent(), { timeout: SANDBOX_START_TIMEOUT_MS }).toBe("Your sandbox is fresh and ready.");

      // The dialog closes by itself once the sandbox is ready, and gives the keyboard back.
      await dialog.waitFor({ state: "hidden", timeout: 10_000 });
      await readyTerminal(page, "main");
      await typeLine(page, "main", "ls /root/left-behind 2>/dev/null || echo FRESH-''SANDBOX");
      await waitForTerminalText(page, "main", /^FRESH-SANDBOX/m, 30_000);
      const sessionAfter = await page.evaluate(() => fetch("/api/sessions/current").then((r) => r.json()).then((b: { sessionId: string }) => b.sessionId));
      expect(sessionAfter).toBe(sessionBefore);
    },
    SANDBOX_START_TIMEOUT_MS * 2 + 60_000,
  );
});
