import type { Browser, BrowserContext, Page, WebSocket } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  SANDBOX_START_TIMEOUT_MS,
  endSession,
  launchBrowser,
  newContext,
  readyTerminal,
  startServer,
  terminalText,
  typeLine,
  uniqueToken,
  waitForTerminalText,
  type RunningServer,
  visit,
} from "./harness.ts";

describe("lesson page", () => {
  let server: RunningServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const sockets: WebSocket[] = [];
  const hellos: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    server = await startServer();
    browser = await launchBrowser();
    context = await newContext(browser, server.url);
    page = await context.newPage();
    page.on("websocket", (socket) => {
      sockets.push(socket);
      socket.on("framesent", (frame) => {
        if (typeof frame.payload !== "string") return;
        const message = JSON.parse(frame.payload) as Record<string, unknown>;
        if (message.type === "hello") hellos.push(message);
      });
    });
    await visit(page, "/lessons/first-containers/");
  });

  afterAll(async () => {
    if (page) await endSession(page);
    await browser?.close();
    await server?.stop();
  });

  it("has the lesson's title, objectives, and previous/next links", async () => {
    await expect(page.locator("h1").textContent()).resolves.toBe("Your first containers");
    expect(await page.locator(".objectives li").count()).toBeGreaterThan(0);
    const next = page.locator('nav[aria-label="Previous and next lesson"] a[rel="next"]');
    await expect(next.getAttribute("href")).resolves.toBe("/lessons/images-and-layers/");
  });

  it("opens one socket per terminal, each saying hello with its own name", async () => {
    await readyTerminal(page, "main");
    await readyTerminal(page, "logs");
    expect(await page.locator('[data-testid="terminal"]').count()).toBe(2);
    expect(hellos.map((hello) => hello.terminal).sort()).toEqual(["logs", "main"]);
    expect(new Set(hellos.map((hello) => hello.token)).size).toBe(1);
    // Besides the terminals, only the sandbox panel under them has a socket.
    const paths = sockets.map((socket) => new URL(socket.url()).pathname);
    expect(paths.filter((p) => p === "/ws/terminal")).toHaveLength(2);
    expect(paths.filter((p) => p !== "/ws/terminal" && p !== "/ws/sandbox-state")).toEqual([]);
  }, SANDBOX_START_TIMEOUT_MS + 30_000);

  it("runs a command from a Run button in the terminal it names", async () => {
    const block = page.locator('[data-run][data-command="docker ps"]').first();
    await block.getByRole("button", { name: /^Run/ }).click();
    await waitForTerminalText(page, "main", /CONTAINER ID\s+IMAGE\s+COMMAND/);
    // The other terminal did not get it.
    expect(await terminalText(page, "logs")).not.toContain("docker ps");
  });

  it("types commands exactly as written, double dashes and quotes included", async () => {
    const block = page.locator('[data-run][data-command="docker run --rm busybox echo \\"gone when done\\""]');
    await expect(block.count()).resolves.toBe(1);
    await block.getByRole("button", { name: /^Run/ }).click();
    await waitForTerminalText(page, "main", /^gone when done$/m, 60_000);
  });

  it("runs a Run block that targets the second terminal there", async () => {
    await page.evaluate(() =>
      document.dispatchEvent(
        new CustomEvent("shipshape:run", { detail: { terminal: "logs", command: "echo from-the-bus", interrupt: false } }),
      ),
    );
    await waitForTerminalText(page, "logs", /^from-the-bus$/m);
  });

  it("gives the two terminals two shells in the same sandbox", async () => {
    const token = uniqueToken();
    await typeLine(page, "main", `echo $$ > /tmp/main-pid; echo shared-${token} > /tmp/shared`);
    await typeLine(page, "logs", "cat /tmp/shared; [ $$ != $(cat /tmp/main-pid) ] && echo other-shell");
    await waitForTerminalText(page, "logs", new RegExp(`^shared-${token}$`, "m"));
    await waitForTerminalText(page, "logs", /^other-shell$/m);
  });

  it("says when a Run button names a terminal that is not on the page", async () => {
    await page.evaluate(() => {
      const block = document.querySelector<HTMLElement>("[data-run]")!;
      block.dataset.term = "nowhere";
    });
    await page.locator("[data-run]").first().getByRole("button", { name: /^Run/ }).click();
    await expect.poll(() => page.locator("[data-run] [data-run-error]").first().textContent(), { timeout: 10_000 }).toBe(
      'There is no terminal named "nowhere" on this page.',
    );
  });
});
