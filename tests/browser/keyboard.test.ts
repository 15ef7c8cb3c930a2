import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  endSession,
  launchBrowser,
  newContext,
  readyTerminal,
  startServer,
  waitForTerminalText,
  type RunningServer,
  visit,
} from "./harness.ts";

/** What has focus, described the way a keyboard user would name it. */
function focused(page: Page): Promise<string> {
  return page.evaluate(() => {
    const element = document.activeElement as HTMLElement | null;
    if (!element || element === document.body) return "body";
    const terminal = element.closest<HTMLElement>('[data-testid="terminal"]');
    if (terminal) return `terminal:${terminal.dataset.terminalName}`;
    const name = (element.getAttribute("aria-label") ?? element.textContent ?? "").replace(/\s+/g, " ").trim();
    return `${element.tagName.toLowerCase()}:${name}`;
  });
}

async function tabUntil(page: Page, predicate: (stop: string) => boolean, max = 150): Promise<string[]> {
  const stops: string[] = [];
  for (let i = 0; i < max; i++) {
    await page.keyboard.press("Tab");
    const stop = await focused(page);
    stops.push(stop);
    if (predicate(stop)) return stops;
  }
  throw new Error(`Never reached the expected element with Tab. Stops:\n${stops.join("\n")}`);
}

describe("keyboard-only use of a lesson", () => {
  let server: RunningServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;

  beforeAll(async () => {
    server = await startServer();
    browser = await launchBrowser();
    context = await newContext(browser, server.url);
    page = await context.newPage();
    await visit(page, "/lessons/first-containers/");
    await readyTerminal(page, "main");
  });

  afterAll(async () => {
    if (page) await endSession(page);
    await browser?.close();
    await server?.stop();
  });

  it("starts with a visible skip link that moves focus to the content", async () => {
    await page.keyboard.press("Tab");
    expect(await focused(page)).toBe("a:Skip to content");
    const box = await page.locator(".skip-link").first().boundingBox();
    expect(box && box.y >= 0 && box.height > 0).toBe(true);
    await page.keyboard.press("Enter");
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("main-content");
  });

  it("reaches the site navigation, the theme toggle, Run buttons and the terminal, in that order", async () => {
    await visit(page, "/lessons/first-containers/");
    await readyTerminal(page, "main");
    const stops = await tabUntil(page, (stop) => stop === "terminal:main");
    const order = ["a:Skip to content", "a:Course", "a:Playground", "button:Dark theme", "button:Run in terminal main", "terminal:main"];
    const positions = order.map((name) => stops.indexOf(name));
    expect(positions.every((position) => position >= 0), stops.join("\n")).toBe(true);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
  });

  it("has a skip link straight to the terminals", async () => {
    await visit(page, "/lessons/first-containers/");
    await readyTerminal(page, "main");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab");
    expect(await focused(page)).toBe("a:Skip to the terminals");
    await page.keyboard.press("Enter");
    await page.keyboard.press("Tab");
    expect(await focused(page)).toBe("terminal:main");
  });

  it("shows where focus is", async () => {
    const run = page.locator("[data-run-button]").first();
    await run.focus();
    await page.keyboard.press("Shift+Tab");
    await page.keyboard.press("Tab");
    const outline = await run.evaluate((element) => getComputedStyle(element).outlineStyle);
    expect(outline).not.toBe("none");
  });

  it("runs a command with Enter on a Run button", async () => {
    const run = page.locator('[data-run][data-command="docker ps -a"] [data-run-button]').first();
    await run.focus();
    await page.keyboard.press("Enter");
    await waitForTerminalText(page, "main", /CONTAINER ID\s+IMAGE/);
  });

  it("types into the terminal, and Shift+Tab leaves it (Tab stays in the shell for completion)", async () => {
    await page.locator('[data-terminal-name="main"] .xterm-helper-textarea').focus();
    await page.keyboard.type("ech");
    await page.keyboard.press("Tab");
    expect(await focused(page)).toBe("terminal:main");
    await page.keyboard.type(" tab-completed");
    await page.keyboard.press("Enter");
    await waitForTerminalText(page, "main", /^tab-completed$/m);
    await page.keyboard.press("Shift+Tab");
    expect(await focused(page)).not.toBe("terminal:main");
  });
});
