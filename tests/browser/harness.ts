/**
 * Browser test harness: Debian's Chromium driven by playwright-core, and the real sandbox server
 * started as a child process on a free port with a data directory of its own.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { removeNamespaces, testNamespace } from "../support/namespaces.ts";

export const repoRoot = path.resolve(import.meta.dirname, "../..");

export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-quic",
  "--no-first-run",
  "--disable-component-update",
  "--disable-sync",
];

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.SHIPSHAPE_CHROMIUM ?? "/usr/bin/chromium",
    args: CHROMIUM_ARGS,
  });
}

const pageProblems = new WeakMap<Page, string[]>();

/** A context whose clipboard works (Copy buttons); page errors are kept for failure messages. */
export async function newContext(
  browser: Browser,
  baseURL: string,
  options: Parameters<Browser["newContext"]>[0] = {},
): Promise<BrowserContext> {
  const context = await browser.newContext({ baseURL, viewport: { width: 1400, height: 900 }, ...options });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: baseURL });
  context.on("page", (page) => {
    const problems: string[] = [];
    pageProblems.set(page, problems);
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      if (message.type() === "error" || message.type() === "warning") problems.push(`console ${message.type()}: ${message.text()}`);
    });
    page.on("requestfailed", (request) => problems.push(`request failed: ${request.url()} ${request.failure()?.errorText ?? ""}`));
  });
  return context;
}

/**
 * Opens (or, without a path, reloads) a page and makes sure its scripts arrived. Chromium aborts
 * requests with ERR_NETWORK_CHANGED whenever the host's interfaces change, which Docker does each
 * time a container starts or stops; a page that lost its module scripts is loaded again.
 */
export async function visit(page: Page, path?: string, attempts = 3): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const problems = pageProblems.get(page);
    const before = problems?.length ?? 0;
    if (path === undefined) await page.reload({ waitUntil: "load" });
    else await page.goto(path, { waitUntil: "load" });
    const lost = (problems ?? []).slice(before).some((p) => p.includes("ERR_NETWORK_CHANGED"));
    if (!lost || attempt >= attempts) return;
    path ??= new URL(page.url()).pathname;
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** The sandbox image set-up built (set-up writes the tag to .data/sandbox-image). */
function sandboxImage(): string | undefined {
  const file = path.join(repoRoot, ".data", "sandbox-image");
  return process.env.SHIPSHAPE_SANDBOX_IMAGE ?? (existsSync(file) ? readFileSync(file, "utf8").trim() : undefined);
}

/** Builds the site once if dist/ is missing (run-all.sh builds before the browser tests). */
export function ensureSiteBuilt(): void {
  if (existsSync(path.join(repoRoot, "dist", "index.html"))) return;
  const result = spawnSync(process.execPath, [path.join(repoRoot, "node_modules/astro/bin/astro.mjs"), "build"], {
    cwd: repoRoot,
    encoding: "utf8",
    env: { ...process.env, ASTRO_TELEMETRY_DISABLED: "1" },
  });
  if (result.status !== 0) throw new Error(`astro build failed:\n${result.stdout}\n${result.stderr}`);
}

export interface RunningServer {
  url: string;
  port: number;
  /** Label namespace of this server's sandboxes, so cleanup touches nothing else. */
  namespace: string;
  /** Everything the server printed, for failure messages. */
  output(): string;
  /** Stops the process and starts it again on the same port and data (sandboxes stay). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts `node sandbox-server/src/main.ts` on a free port and waits (bounded) for /healthz.
 * stop() sends SIGTERM, then SIGKILL after 5 s, and removes any sandbox it left behind.
 */
export async function startServer(options: { env?: Record<string, string>; readyTimeoutMs?: number } = {}): Promise<RunningServer> {
  ensureSiteBuilt();
  const port = await freePort();
  const dataDir = mkdtempSync(path.join(tmpdir(), "shipshape-browser-"));
  const namespace = testNamespace("b");
  // A private copy of the built site: another `astro build` in the same checkout (a colleague's
  // test run) rewrites dist/ in place and would pull pages out from under a running test.
  const siteDir = path.join(dataDir, "site");
  cpSync(path.join(repoRoot, "dist"), siteDir, { recursive: true });
  const image = sandboxImage();
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    PORT: String(port),
    HOST: "127.0.0.1",
    SHIPSHAPE_DATA_DIR: dataDir,
    SHIPSHAPE_SITE_DIR: siteDir,
    SHIPSHAPE_NAMESPACE: namespace,
    SHIPSHAPE_LOG_LEVEL: process.env.SHIPSHAPE_TEST_LOGS ? "debug" : "warn",
    ...(image ? { SHIPSHAPE_SANDBOX_IMAGE: image } : {}),
    ...options.env,
  };
  let output = "";
  const collect = (chunk: Buffer) => {
    output += chunk.toString("utf8");
    if (output.length > 200_000) output = output.slice(-100_000);
    if (process.env.SHIPSHAPE_TEST_LOGS) process.stderr.write(chunk);
  };
  const launch = () => {
    const child = spawn(process.execPath, [path.join(repoRoot, "sandbox-server/src/main.ts")], {
      cwd: repoRoot,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout?.on("data", collect);
    child.stderr?.on("data", collect);
    return child;
  };
  let child = launch();
  const url = `http://127.0.0.1:${port}`;
  const timeoutMs = options.readyTimeoutMs ?? 60_000;

  const stop = async () => {
    await stopChild(child);
    removeNamespaces((ns) => ns === namespace);
    rmSync(dataDir, { recursive: true, force: true });
  };
  const restart = async () => {
    await stopChild(child);
    child = launch();
    await waitForHealthy(url, child, timeoutMs, () => output);
  };

  try {
    await waitForHealthy(url, child, timeoutMs, () => output);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, port, namespace, output: () => output, restart, stop };
}

async function waitForHealthy(url: string, child: ChildProcess, timeoutMs: number, output: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "no answer yet";
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`The server exited with code ${child.exitCode} before it was healthy:\n${output()}`);
    try {
      const response = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) });
      if (response.status === 200) return;
      last = `HTTP ${response.status}: ${await response.text()}`;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`The server at ${url} was not healthy within ${timeoutMs / 1000} s (last: ${last}).\n${output()}`);
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}

/** Sandboxes (containers and their volumes) the server's namespace left behind. */
export function leftoverSandboxes(namespace: string): string[] {
  const result = spawnSync("docker", ["ps", "-aq", "--filter", `label=org.shipshape.namespace=${namespace}`], { encoding: "utf8" });
  return result.status === 0 ? result.stdout.split("\n").filter(Boolean) : [];
}

/** Ends the page's sandbox through the API, as a learner's "end session" would. */
export async function endSession(page: Page): Promise<void> {
  await page
    .evaluate(() => fetch("/api/sessions/current", { method: "DELETE", credentials: "same-origin" }).then((r) => r.status))
    .catch(() => undefined);
}

// ---- reading and typing into terminals -------------------------------------------------------

const terminalSelector = (name: string) => `[data-testid="terminal"][data-terminal-name="${name}"]`;

/**
 * The text a terminal shows, row by row, from xterm's screen-reader tree (screenReaderMode),
 * falling back to the DOM renderer's rows.
 */
export async function terminalText(page: Page, name: string): Promise<string> {
  return page.$eval(terminalSelector(name), (root) => {
    const tree = root.querySelector(".xterm-accessibility-tree");
    const rows = tree ?? root.querySelector(".xterm-rows");
    if (!rows) return "";
    return Array.from(rows.children, (row) => (row.textContent ?? "").replace(/\u00a0/g, " ").trimEnd()).join("\n");
  });
}

/** Waits until the terminal's text matches; the error shows what it did show. */
export async function waitForTerminalText(page: Page, name: string, pattern: RegExp, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let text = "";
  while (Date.now() < deadline) {
    text = await terminalText(page, name).catch(() => "");
    if (pattern.test(text)) return text;
    await page.waitForTimeout(100);
  }
  const status = await page
    .evaluate(() => {
      const state = document.querySelector<HTMLElement>("[data-sandbox-status]");
      const overlay = document.querySelector<HTMLElement>("[data-terminal-overlay]:not([hidden]) [data-overlay-text]");
      const terminals = Array.from(document.querySelectorAll<HTMLElement>('[data-testid="terminal"]'), (t) => `${t.dataset.terminalName}=${t.dataset.state ?? "placeholder"}`);
      return `sandbox status: ${state?.dataset.state ?? "?"} "${state?.querySelector("[data-status-text]")?.textContent ?? ""}"${overlay ? `; overlay: "${overlay.textContent}"` : ""}; terminals: ${terminals.join(", ")}`;
    })
    .catch(() => "sandbox status: unknown");
  const problems = (pageProblems.get(page) ?? []).filter((p) => !p.includes("GL Driver Message")).slice(-10);
  throw new Error(
    `Terminal "${name}" did not show ${pattern} within ${timeoutMs} ms (${status}). It shows:\n${text.trimEnd()}` +
      (problems.length ? `\nPage problems:\n${problems.join("\n")}` : ""),
  );
}

/** A cold sandbox starts in seconds, but a busy 2-core CI machine can take much longer. */
export const SANDBOX_START_TIMEOUT_MS = 120_000;

export const PROMPT = /sandbox:[^\n]*[#$] ?$/m;

/** Waits for the shell prompt, then focuses the terminal's input. */
export async function readyTerminal(page: Page, name: string, timeoutMs = SANDBOX_START_TIMEOUT_MS): Promise<void> {
  await page.locator(terminalSelector(name)).scrollIntoViewIfNeeded();
  await waitForTerminalText(page, name, PROMPT, timeoutMs);
}

/** Types a line into the terminal as a learner would (focus, keystrokes, Enter). */
export async function typeLine(page: Page, name: string, line: string): Promise<void> {
  await page.locator(`${terminalSelector(name)} .xterm-helper-textarea`).focus();
  await page.keyboard.type(line, { delay: 5 });
  await page.keyboard.press("Enter");
}

export function uniqueToken(): string {
  return Math.random().toString(36).slice(2, 8);
}
