/**
 * The peer: WeTTY (npm `wetty`), the best-known open web terminal, serving the same
 * `docker exec -it <sandbox> bash` shells. It needs node-pty, a native addon that npm here builds
 * against Node 20's headers, so it is installed with the system Node 20 (`/usr/bin/npm`) into
 * .cache/bench-peer (git-ignored) on the first run, and runs under the system Node 20.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { repoRoot, rssMb, track } from "./server.ts";
import { now, sleep } from "./stats.ts";
import { PROMPT, stripAnsi } from "./terminal.ts";

const run = promisify(execFile);
export const PEER_DIR = path.join(repoRoot, ".cache", "bench-peer");
export const PEER_PACKAGES = ["wetty@3.2.0"];
const SYSTEM_NODE = process.env.BENCH_PEER_NODE ?? "/usr/bin/node";
const SYSTEM_NPM = process.env.BENCH_PEER_NPM ?? "/usr/bin/npm";
const WETTY_MAIN = path.join(PEER_DIR, "node_modules", "wetty", "build", "main.js");

/** Installs the peer on first use (bounded: 5 minutes); later runs find it in place. */
export async function ensurePeer(log: (line: string) => void): Promise<{ version: string; node: string }> {
  const nodeVersion = (await run(SYSTEM_NODE, ["--version"])).stdout.trim();
  if (!existsSync(WETTY_MAIN) || !(await ptyLoads())) {
    log(`installing the peer (${PEER_PACKAGES.join(", ")}) with ${SYSTEM_NPM} (Node ${nodeVersion}) into ${path.relative(repoRoot, PEER_DIR)}`);
    mkdirSync(PEER_DIR, { recursive: true });
    writeFileSync(path.join(PEER_DIR, "package.json"), JSON.stringify({ name: "shipshape-bench-peer", private: true }) + "\n");
    await run(SYSTEM_NPM, ["install", "--no-save", "--no-audit", "--no-fund", "--loglevel=error", ...PEER_PACKAGES], {
      cwd: PEER_DIR,
      timeout: 300_000,
      env: { ...process.env, PATH: `${path.dirname(SYSTEM_NODE)}:${process.env.PATH ?? ""}` },
    });
    if (!(await ptyLoads())) throw new Error("node-pty did not load after installing the peer");
  }
  const pkg = JSON.parse(readFileSync(path.join(PEER_DIR, "node_modules", "wetty", "package.json"), "utf8")) as { version: string };
  return { version: `wetty ${pkg.version}`, node: nodeVersion };
}

async function ptyLoads(): Promise<boolean> {
  return run(SYSTEM_NODE, ["-e", "require('node-pty')"], { cwd: PEER_DIR, timeout: 20_000 }).then(
    () => true,
    () => false,
  );
}

export interface PeerServer {
  url: string;
  pid: number;
  rssMb(): number;
  stop(): Promise<void>;
}

/** Starts WeTTY on a free loopback port; each new terminal gets the next sandbox of `sandboxIds`. */
export async function startWetty(sandboxIds: string[]): Promise<PeerServer> {
  const state = mkdtempSync(path.join(tmpdir(), "shipshape-bench-peer-"));
  writeFileSync(path.join(state, "sandboxes"), sandboxIds.join("\n") + "\n");
  const port = await freePort();
  const child = spawn(
    SYSTEM_NODE,
    [WETTY_MAIN, "--host", "127.0.0.1", "--port", String(port), "--base", "/wetty", "--log-level", "warn",
      "--command", `sh ${path.join(repoRoot, "bench", "peer", "pick-sandbox.sh")}`],
    { cwd: PEER_DIR, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, BENCH_PEER_STATE: state } },
  );
  let output = "";
  child.stdout!.on("data", (c: Buffer) => (output = (output + c.toString()).slice(-20_000)));
  child.stderr!.on("data", (c: Buffer) => (output = (output + c.toString()).slice(-20_000)));
  const url = `http://127.0.0.1:${port}`;
  const stop = track(async () => {
    await stopChild(child);
    rmSync(state, { recursive: true, force: true });
  });
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    const ok = await fetch(`${url}/wetty`, { signal: AbortSignal.timeout(2_000) }).then((r) => r.ok, () => false);
    if (ok) return { url, pid: child.pid!, rssMb: () => rssMb(child.pid!), stop };
    await sleep(100);
  }
  await stop();
  throw new Error(`wetty did not start:\n${output}`);
}

interface IoSocket {
  on(event: string, listener: (...args: unknown[]) => void): void;
  emit(event: string, ...args: unknown[]): void;
  disconnect(): void;
}
type IoConnect = (url: string, options: Record<string, unknown>) => IoSocket;

let ioConnect: IoConnect | undefined;
function io(): IoConnect {
  ioConnect ??= (createRequire(path.join(PEER_DIR, "package.json"))("socket.io-client") as { io: IoConnect }).io;
  return ioConnect;
}

/** WeTTY's wire protocol as its own page speaks it: socket.io events, `commit` every 256 KiB rendered. */
export class WettyTerminal {
  private readonly socket: IoSocket;
  tail = "";
  received = 0;
  closed = false;
  private committed = 0;
  private listeners = new Set<(chunk: string) => void>();
  private waiters = new Set<() => void>();

  constructor(url: string, size = { cols: 120, rows: 30 }) {
    this.socket = io()(url, { path: "/wetty/socket.io", transports: ["websocket"], forceNew: true, reconnection: false });
    this.socket.on("connect", () => this.socket.emit("resize", size));
    this.socket.on("data", (data: unknown) => {
      const text = String(data);
      this.received += text.length;
      this.tail = (this.tail + text).slice(-8 * 1024);
      for (const l of this.listeners) l(text);
      // WeTTY's FlowControlClient: one `commit` of 256 KiB for every 256 KiB written to xterm.
      this.committed += text.length;
      while (this.committed >= 262_144) {
        this.committed -= 262_144;
        this.socket.emit("commit", 262_144);
      }
      this.wake();
    });
    const gone = () => {
      this.closed = true;
      this.wake();
    };
    this.socket.on("logout", gone);
    this.socket.on("disconnect", gone);
  }

  onOutput(listener: (chunk: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  type(data: string): void {
    this.socket.emit("input", data);
  }

  prompt(timeoutMs = 30_000): Promise<void> {
    return this.until(() => PROMPT.test(stripAnsi(this.tail)), timeoutMs, "the prompt");
  }

  until(test: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (test()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`wetty: timed out after ${timeoutMs} ms waiting for ${what}; output ends ${JSON.stringify(stripAnsi(this.tail).slice(-200))}`));
      }, timeoutMs);
      const check = () => {
        if (test() || this.closed) {
          clearTimeout(timer);
          this.waiters.delete(check);
          if (test()) resolve();
          else reject(new Error(`wetty: the terminal closed waiting for ${what}`));
        }
      };
      this.waiters.add(check);
    });
  }

  close(): void {
    this.socket.disconnect();
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}

/** Time from connecting to WeTTY to its prompt (its path: socket.io, a pty, the docker CLI, exec). */
export async function wettyConnectToPrompt(url: string): Promise<number> {
  const t0 = now();
  const t = new WettyTerminal(url);
  try {
    await t.prompt(30_000);
    return now() - t0;
  } finally {
    t.close();
  }
}

function freePort(): Promise<number> {
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

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}
