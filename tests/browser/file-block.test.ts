import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  endSession,
  launchBrowser,
  newContext,
  readyTerminal,
  startServer,
  typeLine,
  waitForTerminalText,
  type RunningServer,
  visit,
} from "./harness.ts";

describe("file blocks", () => {
  let server: RunningServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;

  beforeAll(async () => {
    server = await startServer();
    browser = await launchBrowser();
    context = await newContext(browser, server.url);
    page = await context.newPage();
    await visit(page, "/lessons/images-and-layers/");
    await readyTerminal(page, "main");
  });

  afterAll(async () => {
    if (page) await endSession(page);
    await browser?.close();
    await server?.stop();
  });

  it("writes the file into the sandbox and says so", async () => {
    const block = page.locator('[data-file][data-path="/root/site/Dockerfile"]');
    await block.getByRole("button", { name: "Write to sandbox" }).click();
    await expect
      .poll(() => block.locator("[data-file-result]").textContent(), { timeout: 15_000 })
      .toBe("Wrote /root/site/Dockerfile in your sandbox.");
    await typeLine(page, "main", "cat /root/site/Dockerfile");
    await waitForTerminalText(page, "main", /^COPY index\.html \/usr\/share\/nginx\/html\/index\.html$/m);
    await waitForTerminalText(page, "main", /^FROM nginx:1\.22$/m);
  });

  it("placed the lesson's frontmatter files when the sandbox became ready", async () => {
    await typeLine(page, "main", "cat /root/site/index.html");
    await waitForTerminalText(page, "main", /^<h1>Hello from my own image!<\/h1>$/m);
  });

  it("shows the server's reason when a write fails", async () => {
    await page.evaluate(() => {
      const block = document.querySelector<HTMLElement>('[data-file][data-path="/root/site/Dockerfile"]')!;
      block.dataset.path = "relative/path";
    });
    const block = page.locator('[data-file][data-path="relative/path"]');
    await block.getByRole("button", { name: "Write to sandbox" }).click();
    await expect
      .poll(() => block.getAttribute("data-result"), { timeout: 15_000 })
      .toBe("error");
    await expect(block.locator("[data-file-result]").textContent()).resolves.toMatch(/absolute path/);
  });

  it("has a Copy button on code blocks that copies the code as written", async () => {
    const block = page.locator(".code-block").filter({ hasText: "my-nginx" }).first();
    await block.hover();
    await block.getByRole("button", { name: "Copy" }).click();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    expect(copied).toContain("my-nginx     stable    6a77e7d21cb1");
    await expect.poll(() => block.getByRole("button", { name: /Copied/ }).count(), { timeout: 10_000 }).toBe(1);
  });
});
