import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, newContext, startServer, visit, type RunningServer } from "./harness.ts";

/** The site around the terminals: outline, theme, progress, 404. No sandbox is started here. */
describe("site", () => {
  let server: RunningServer;
  let browser: Browser;

  beforeAll(async () => {
    server = await startServer();
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("lists the lessons in course order with their durations on the home page", async () => {
    const page = await (await newContext(browser, server.url)).newPage();
    await visit(page, "/");
    const items = page.locator("[data-course-outline] li");
    const titles = await items.locator("h3 a").allTextContents();
    expect(titles.slice(0, 2)).toEqual(["Your first containers", "Images and layers"]);
    // Numbered 1, 2, 3… in order, each with its duration.
    const numbers = (await items.locator(".number").allTextContents()).map(Number);
    expect(numbers).toEqual(titles.map((_, index) => index + 1));
    await expect(items.locator("h3 a").first().getAttribute("href")).resolves.toBe("/lessons/first-containers/");
    for (const text of await items.allTextContents()) expect(text).toMatch(/\d+ min/);
    await page.context().close();
  });

  it("follows the system colour scheme, and remembers the learner's choice over it", async () => {
    const context = await newContext(browser, server.url, { colorScheme: "dark" });
    const page = await context.newPage();
    await visit(page, "/");
    const theme = () => page.evaluate(() => document.documentElement.dataset.theme);
    await expect(theme()).resolves.toBe("dark");
    const toggle = page.getByRole("button", { name: "Dark theme" });
    await expect(toggle.getAttribute("aria-pressed")).resolves.toBe("true");
    await toggle.click();
    await expect(theme()).resolves.toBe("light");
    await expect(toggle.getAttribute("aria-pressed")).resolves.toBe("false");
    await visit(page, "/playground/");
    await expect(theme()).resolves.toBe("light");
    await context.close();
  });

  it("leaves graded lessons to the server: no manual tick, and a tick forged in localStorage changes nothing", async () => {
    const context = await newContext(browser, server.url);
    // The lesson page would start a sandbox; this test only needs the page and GET /api/progress.
    await context.route("**/api/sessions**", (route) => route.fulfill({ status: 503, body: "{}" }));
    await context.route("**/ws/**", (route) => route.abort());
    const page = await context.newPage();
    await visit(page, "/lessons/images-and-layers/");
    await expect(page.getByRole("button", { name: "Mark lesson as done" }).count()).resolves.toBe(0);
    await expect
      .poll(() => page.locator(".lesson-footer [data-lesson-progress]").textContent())
      .toBe("0 of 2 exercises passed. Pass them all to complete the lesson.");
    await page.evaluate(() =>
      localStorage.setItem("shipshape:progress:v1", JSON.stringify({ "images-and-layers": { visitedAt: 1, completedAt: 2 } })),
    );
    await visit(page, "/");
    const item = page.locator('[data-lesson-slug="images-and-layers"]');
    await expect.poll(() => item.locator("[data-progress-text]").textContent()).toBe("0 of 2 exercises passed");
    await expect(item.getAttribute("data-progress")).resolves.toBe("started");
    await expect(page.locator('[data-lesson-slug="first-containers"]').getAttribute("data-progress")).resolves.toBe("none");
    await context.close();
  });

  it("answers an unknown address with the friendly 404 page", async () => {
    const page = await (await newContext(browser, server.url)).newPage();
    const response = await page.goto("/lessons/no-such-lesson/");
    expect(response?.status()).toBe(404);
    await expect(page.locator("h1").textContent()).resolves.toBe("This page is not in the course");
    await expect(page.getByRole("link", { name: "See all lessons" }).getAttribute("href")).resolves.toBe("/");
    await page.context().close();
  });
});
