import { existsSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import { repoRoot, waitForPool, type BenchServer } from "../lib/server.ts";
import { summarize, type Summary } from "../lib/stats.ts";

const CHROMIUM = process.env.SHIPSHAPE_CHROMIUM ?? "/usr/bin/chromium";
// No WebGL: xterm then draws with its DOM renderer, whose rows are text the marks below can watch
// (a WebGL canvas has none). The screen-reader tree has text too, but xterm refreshes it at most
// once a second, so it would time xterm's debounce, not the drawing.
const CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-3d-apis", "--disable-background-networking", "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"];

export interface BrowserResult {
  runs: number;
  /** From the page's POST /api/sessions to the prompt drawn in the terminal's DOM. */
  click_to_prompt: Summary;
  /** From navigation start to the prompt drawn (includes loading the page and xterm). */
  navigation_to_prompt: Summary;
  /** From the page's POST /api/sessions to its terminal WebSocket being opened (the page loads xterm meanwhile). */
  post_to_socket: Summary;
}

/** Runs in the page before its own scripts: notes when the session is requested and when the prompt is in the DOM. */
const MARKS_SCRIPT = `
(() => {
  const marks = (window.__benchMarks = {});
  const fetch0 = window.fetch.bind(window);
  window.fetch = (input, init) => {
    const url = typeof input === "string" ? input : input.url;
    if (marks.post === undefined && /\\/api\\/sessions$/.test(url) && (init?.method ?? "GET") === "POST") marks.post = performance.now();
    return fetch0(input, init);
  };
  const WebSocket0 = window.WebSocket;
  window.WebSocket = class extends WebSocket0 {
    constructor(url, protocols) {
      super(url, protocols);
      if (marks.socket === undefined && String(url).includes("/ws/terminal")) marks.socket = performance.now();
    }
  };
  const prompt = /sandbox:\\S*[#$]/;
  const check = () => {
    if (marks.prompt !== undefined) return;
    const root = document.querySelector('[data-testid="terminal"]');
    const rows = root && root.querySelector(".xterm-rows");
    if (rows && prompt.test(rows.textContent || "")) marks.prompt = performance.now();
  };
  new MutationObserver(check).observe(document, { subtree: true, childList: true, characterData: true });
})();
`;

export function playgroundBuilt(): boolean {
  return existsSync(path.join(repoRoot, "dist", "playground", "index.html"));
}

/** Warm click-to-prompt in real Chromium on /playground/: a new browser context (a new learner) per run. */
export async function browserClickToPrompt(server: BenchServer, options: { runs: number; poolSize: number }): Promise<BrowserResult> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const clicks: number[] = [];
  const navs: number[] = [];
  const sockets: number[] = [];
  try {
    for (let i = 0; i < options.runs; i++) {
      await waitForPool(server.url, options.poolSize);
      const context = await browser.newContext({ baseURL: server.url, viewport: { width: 1280, height: 800 } });
      try {
        const page = await context.newPage();
        await page.addInitScript(MARKS_SCRIPT);
        await page.goto("/playground/");
        await page.waitForFunction(() => (window as unknown as { __benchMarks: { prompt?: number } }).__benchMarks.prompt !== undefined, undefined, {
          timeout: 60_000,
        });
        const marks = await page.evaluate(() => (window as unknown as { __benchMarks: { post: number; socket?: number; prompt: number } }).__benchMarks);
        clicks.push(marks.prompt - marks.post);
        navs.push(marks.prompt);
        if (marks.socket !== undefined) sockets.push(marks.socket - marks.post);
        await page.evaluate(() => fetch("/api/sessions/current", { method: "DELETE", credentials: "same-origin" }).then((r) => r.status));
      } finally {
        await context.close();
      }
    }
  } finally {
    await browser.close();
  }
  return { runs: clicks.length, click_to_prompt: summarize(clicks), navigation_to_prompt: summarize(navs), post_to_socket: summarize(sockets) };
}
