import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  PROMPT,
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

describe("playground", () => {
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

  it("shows a prompt in one big terminal, and the sandbox is ready", async () => {
    await visit(page, "/playground/");
    await expect(page.title()).resolves.toBe("Playground · shipshape");
    expect(await page.locator('[data-testid="terminal"]').count()).toBe(1);
    await readyTerminal(page, "playground");
    await expect(page.locator('[role="status"]').first().textContent()).resolves.toBe("Sandbox ready");
  }, SANDBOX_START_TIMEOUT_MS + 30_000);

  it("draws with the DOM renderer when WebGL is unavailable, and keeps the text readable", async () => {
    const renderer = await page.locator('[data-testid="terminal"]').getAttribute("data-renderer");
    const hasWebgl = await page.evaluate(() => document.createElement("canvas").getContext("webgl2") !== null);
    expect(renderer).toBe(hasWebgl ? "webgl" : null);
    expect(await terminalText(page, "playground")).toMatch(PROMPT);
  });

  it("runs what the learner types and shows the output", async () => {
    const token = uniqueToken();
    await typeLine(page, "playground", `echo hello-${token}-$((6*7))`);
    // The typed line is echoed by the shell, and the output appears on a line of its own.
    const text = await waitForTerminalText(page, "playground", new RegExp(`^hello-${token}-42$`, "m"));
    expect(text).toContain(`echo hello-${token}-$((6*7))`);
  });

  it("brings back the same shell and its screen after a reload", async () => {
    const token = uniqueToken();
    await typeLine(page, "playground", `export MARK=${token}; echo before-reload-${token}`);
    await waitForTerminalText(page, "playground", new RegExp(`^before-reload-${token}$`, "m"));
    await visit(page);
    // The replayed screen has the earlier output, once (the terminal was reset before the replay)...
    const replayed = await waitForTerminalText(page, "playground", new RegExp(`^before-reload-${token}$`, "m"));
    expect(replayed.match(new RegExp(`^before-reload-${token}$`, "gm"))).toHaveLength(1);
    // ...and it is the same shell: its variables survived.
    await waitForTerminalText(page, "playground", PROMPT);
    await typeLine(page, "playground", "echo mark=$MARK");
    await waitForTerminalText(page, "playground", new RegExp(`^mark=${token}$`, "m"));
  });

  it("reconnects by itself when the server restarts, to the same shell", async () => {
    const token = uniqueToken();
    await typeLine(page, "playground", `export KEPT=${token}`);
    const states: string[] = [];
    await page.exposeFunction("recordSandboxState", (state: string) => states.push(state));
    await page.evaluate(() =>
      document.addEventListener("shipshape:sandbox", (event) =>
        (window as unknown as { recordSandboxState(state: string): void }).recordSandboxState(
          (event as CustomEvent<{ state: string }>).detail.state,
        ),
      ),
    );
    await server.restart();
    // While the server is away the page says it is reconnecting, then ready again.
    await expect.poll(() => page.locator("[data-sandbox-status]").first().getAttribute("data-state"), { timeout: 30_000 }).toBe("ready");
    expect(states).toContain("reconnecting");
    // The shell's answer proves it is the same shell; that its prompt is redrawn after the restart
    // is asserted at the protocol level (tests/integration/lifecycle.test.ts).
    await typeLine(page, "playground", "echo kept=$KEPT");
    await waitForTerminalText(page, "playground", new RegExp(`^kept=${token}$`, "m"), 30_000);
  });

  it("says the sandbox is gone when it ends, and starts a new one from the button", { timeout: SANDBOX_START_TIMEOUT_MS + 60_000 }, async () => {
    const before = await page.evaluate(() => fetch("/api/sessions/current").then((r) => r.json() as Promise<{ sessionId: string }>));
    await endSession(page);
    const overlay = page.locator("[data-terminal-overlay]");
    await expect.poll(() => overlay.isVisible(), { timeout: 15_000 }).toBe(true);
    await expect(overlay.locator("[data-overlay-text]").textContent()).resolves.toBe(
      "This sandbox was ended. Start a new one to continue.",
    );
    await expect(page.locator('[role="status"]').first().textContent()).resolves.toBe(
      "This sandbox was ended. Start a new one to continue.",
    );
    await overlay.getByRole("button", { name: "Start a new sandbox" }).click();
    // The old screen goes once the new sandbox is there; then its prompt appears.
    await expect.poll(() => overlay.isVisible(), { timeout: SANDBOX_START_TIMEOUT_MS }).toBe(false);
    await waitForTerminalText(page, "playground", PROMPT, 60_000);
    const after = await page.evaluate(() => fetch("/api/sessions/current").then((r) => r.json() as Promise<{ sessionId: string }>));
    expect(after.sessionId).not.toBe(before.sessionId);
    const token = uniqueToken();
    await typeLine(page, "playground", `echo fresh-${token}`);
    await waitForTerminalText(page, "playground", new RegExp(`^fresh-${token}$`, "m"));
  });
});
