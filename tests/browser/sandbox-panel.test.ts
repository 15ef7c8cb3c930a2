/**
 * The sandbox panel in a real browser, beside the playground's terminal: the learner builds an
 * image twice and sees the reused layers marked, runs a container with a volume and a published
 * port and sees both appear (and the preview link open the app), removes them and sees them go.
 *
 * With SHIPSHAPE_PANEL_SCREENSHOT=<file> it also saves a picture of the panel there (the README's).
 */
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { endSession, launchBrowser, newContext, readyTerminal, SANDBOX_START_TIMEOUT_MS, startServer, typeLine, visit, waitForTerminalText, type RunningServer } from "./harness.ts";

describe("sandbox panel", () => {
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

  const panel = () => page.locator("[data-sandbox-panel]");
  const image = (tag: string) => panel().locator(`.panel-image[data-image="${tag}"]`);
  const live = () => panel().locator('[data-part="live"]');

  it(
    "marks the layers a second build reused, and says what each layer is",
    async () => {
      await visit(page, "/playground/");
      await readyTerminal(page, "playground");
      await expect.poll(() => panel().locator('[data-part="counts"]').textContent(), { timeout: 30_000 }).toMatch(/^\d+ containers? · \d+ images? · /);
      await typeLine(
        page,
        "playground",
        "mkdir -p /root/app && cd /root/app && printf 'FROM busybox\\nRUN echo built > /built.txt\\nCOPY v.txt /v.txt\\n' > Dockerfile && echo 1 > v.txt && docker build -q -t app:v1 . && echo 2 > v.txt && docker build -q -t app:v2 . && echo BUILT-TWICE",
      );
      await waitForTerminalText(page, "playground", /^BUILT-TWICE/m, 180_000);
      await image("app:v2").waitFor({ timeout: 30_000 });
      await image("app:v1").waitFor({ timeout: 30_000 });

      // Newest on top: COPY (rebuilt, its own), RUN (reused from the cache), then busybox's base.
      const layers = image("app:v2").locator(".panel-layer");
      const labels = await layers.evaluateAll((els) => els.map((e) => e.getAttribute("aria-label") ?? ""));
      const instructions = await layers.locator(".panel-layer-instruction").allTextContents();
      expect(instructions.slice(0, 2)).toEqual(["COPY", "RUN"]);
      expect(await layers.nth(0).getAttribute("data-shared")).toBe("false");
      expect(await layers.nth(1).getAttribute("data-shared")).toBe("true");
      expect(labels[1]).toMatch(/^Layer \d+ of \d+: RUN, .* shared with app:v1/);
      expect(await layers.nth(1).locator(".panel-layer-shared").textContent()).toBe("shared");
      expect(await image("app:v1").locator('.panel-layer[data-shared="false"] .panel-layer-instruction').allTextContents()).toEqual(["COPY"]);

      // By keyboard: the layer is a button; Enter shows its instruction, size and created-by.
      await layers.nth(1).focus();
      await page.keyboard.press("Enter");
      const details = panel().locator('[data-part="details"]');
      await expect(details.textContent()).resolves.toContain("echo built > /built.txt");
      expect(await details.locator("dt").allTextContents()).toEqual(["Instruction", "Size", "Created by", "Created", "Shared with"]);
      expect(await details.locator("dd").nth(4).textContent()).toContain("app:v1");
    },
    SANDBOX_START_TIMEOUT_MS + 240_000,
  );

  it(
    "shows a container with its volume and published port, opens the preview, and lets them go",
    async () => {
      await typeLine(page, "playground", "docker run -d --name web -e API_TOKEN=hunter2 -v site:/usr/share/nginx/html -p 8080:80 nginx");
      const card = panel().locator('.panel-card[data-container="web"]');
      await card.waitFor({ timeout: 120_000 });
      await expect(card.getAttribute("aria-label")).resolves.toBe("web, running, image nginx, publishes 8080");
      await expect(panel().locator('[data-volume="site"]').textContent()).resolves.toBe("⛁ site used by web");
      await expect.poll(() => live().textContent(), { timeout: 10_000 }).toContain("container web started, publishes 8080");

      // The container's details: command, mounts, env names (never values), log lines on demand.
      await card.click();
      const details = panel().locator('[data-part="details"]');
      await expect.poll(() => details.textContent(), { timeout: 10_000 }).toContain("API_TOKEN");
      expect(await details.textContent()).not.toContain("hunter2");
      expect(await details.textContent()).toContain("volume site → /usr/share/nginx/html");
      await expect.poll(() => details.locator(".panel-logs").textContent(), { timeout: 15_000 }).not.toBe("Loading…");

      // The port is a preview link that opens nginx.
      const link = panel().locator('.panel-port[data-port="8080"] a');
      await link.waitFor({ timeout: 30_000 });
      let popup: Page | undefined;
      for (let attempt = 0; attempt < 20; attempt++) {
        const opening = context.waitForEvent("page");
        await link.click();
        popup = await opening;
        await popup.waitForLoadState("load");
        if ((await popup.title()) === "Welcome to nginx!") break;
        await popup.close();
        popup = undefined;
        await page.waitForTimeout(1_000);
      }
      if (!popup) throw new Error("nginx never appeared through the panel's preview link");
      await popup.close();

      const shot = process.env.SHIPSHAPE_PANEL_SCREENSHOT;
      if (shot) {
        // The whole panel in view: details closed, a window tall enough for the layer stacks.
        await card.click();
        await page.setViewportSize({ width: 1400, height: 1250 });
        await page.waitForTimeout(500);
        await page.screenshot({ path: shot });
        await page.setViewportSize({ width: 1400, height: 900 });
      }

      await typeLine(page, "playground", "docker rm -f web && docker volume rm site && docker rmi app:v1 app:v2");
      await card.waitFor({ state: "detached", timeout: 60_000 });
      await panel().locator('[data-volume="site"]').waitFor({ state: "detached", timeout: 30_000 });
      await image("app:v2").waitFor({ state: "detached", timeout: 30_000 });
      await expect(panel().locator(".panel-port").count()).resolves.toBe(0);
      await expect.poll(() => live().textContent(), { timeout: 10_000 }).toMatch(/container web removed|volume site removed|image app:v/);
    },
    240_000,
  );
});
