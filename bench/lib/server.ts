import { spawn, type ChildProcess } from "node:child_process";
import { DatabaseSync } from "node:sqlite";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { removeBenchContainers } from "./docker.ts";
import { sleep } from "./stats.ts";

export const repoRoot = path.resolve(import.meta.dirname, "../..");
export const NAMESPACE = "bench";

export interface BenchServer {
  url: string;
  pid: number;
  /** Resident memory of the server process now, in MiB. */
  rssMb(): number;
  output(): string;
  alive(): boolean;
  /** The sandbox container serving a session, read from the server's own database. */
  sandboxOf(sessionId: string): string;
  stop(): Promise<void>;
}

/** Child processes (servers, the peer) still running, so a signal can stop them before the clean-up. */
const running = new Set<() => Promise<void>>();

/** Registers a child's stop function until it has stopped. */
export function track(stop: () => Promise<void>): () => Promise<void> {
  const tracked = async () => {
    running.delete(tracked);
    await stop();
  };
  running.add(tracked);
  return tracked;
}

/** Stops every child still running (on Ctrl-C or a failure), so none starts sandboxes after the clean-up. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((stop) => stop().catch(() => {})));
}

/** The sandbox image set-up built. */
export function sandboxImage(): string {
  const file = path.join(repoRoot, ".data", "sandbox-image");
  return process.env.SHIPSHAPE_SANDBOX_IMAGE ?? (existsSync(file) ? readFileSync(file, "utf8").trim() : "shipshape/sandbox:latest");
}

/**
 * Starts `node sandbox-server/src/main.ts` as a child process on a free port, with a data
 * directory of its own and the bench's label namespace, and waits (bounded) until it answers.
 */
export async function startServer(env: Record<string, string> = {}, nodeArgs: string[] = []): Promise<BenchServer> {
  const dataDir = mkdtempSync(path.join(tmpdir(), "shipshape-bench-"));
  const siteDir = path.join(repoRoot, "dist");
  const child = spawn(process.execPath, [...nodeArgs, path.join(repoRoot, "sandbox-server/src/main.ts")], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      PORT: "0",
      HOST: "127.0.0.1",
      SHIPSHAPE_DATA_DIR: dataDir,
      SHIPSHAPE_NAMESPACE: NAMESPACE,
      // Terminals need no lessons or exercises: an empty content dir keeps the bench independent of content edits.
      SHIPSHAPE_CONTENT_DIR: dataDir,
      SHIPSHAPE_SANDBOX_IMAGE: sandboxImage(),
      SHIPSHAPE_LOG_LEVEL: "warn",
      // Every simulated learner connects from this machine's loopback address, and a class of 50
      // is measured on purpose beyond the memory-safe default cap (docs/security.md, "HTTP and
      // identity"): these stand for the operator who raised both for a class.
      SHIPSHAPE_SANDBOXES_PER_ADDRESS: "100000",
      SHIPSHAPE_MAX_SANDBOXES: "300",
      ...(existsSync(siteDir) ? { SHIPSHAPE_SITE_DIR: siteDir } : {}),
      ...env,
    },
  });
  let output = "";
  const collect = (chunk: Buffer) => {
    output += chunk.toString("utf8");
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout!.on("data", collect);
  child.stderr!.on("data", collect);

  const stop = track(async () => {
    await stopChild(child);
    rmSync(dataDir, { recursive: true, force: true });
  });
  try {
    const url = await waitForUrl(child, () => output, 30_000);
    await waitForHealthy(url, 30_000);
    const sandboxOf = (sessionId: string) => {
      const db = new DatabaseSync(path.join(dataDir, "shipshape.db"), { readOnly: true });
      try {
        const row = db.prepare("SELECT sandbox_id FROM sessions WHERE id = ?").get(sessionId) as { sandbox_id: string | null } | undefined;
        if (!row?.sandbox_id) throw new Error(`session ${sessionId} has no sandbox yet`);
        return row.sandbox_id;
      } finally {
        db.close();
      }
    };
    const alive = () => child.exitCode === null && child.signalCode === null;
    return { url, pid: child.pid!, rssMb: () => rssMb(child.pid!), output: () => output, alive, sandboxOf, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Runs `fn` with a server of its own; the server and every sandbox of the namespace go afterwards. */
export async function withServer<T>(
  env: Record<string, string>,
  fn: (server: BenchServer) => Promise<T>,
  nodeArgs: string[] = [],
): Promise<T> {
  const server = await startServer(env, nodeArgs);
  try {
    return await fn(server);
  } catch (e) {
    // A server that died explains the failure better than the client's error.
    if (!server.alive()) throw new Error(`${String(e)}; the server exited:\n${server.output().slice(-3000)}`);
    throw e;
  } finally {
    await server.stop();
    await removeBenchContainers();
  }
}

async function waitForUrl(child: ChildProcess, output: () => string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const m = /running at (http:\/\/\S+)/.exec(output());
    if (m) return m[1]!.replace("localhost", "127.0.0.1");
    if (child.exitCode !== null) throw new Error(`the server exited with code ${child.exitCode}:\n${output()}`);
    await sleep(50);
  }
  throw new Error(`the server did not start within ${timeoutMs / 1000} s:\n${output()}`);
}

async function waitForHealthy(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) });
      if (res.ok) return;
      last = `${res.status} ${await res.text()}`;
    } catch (e) {
      last = String(e);
    }
    await sleep(100);
  }
  throw new Error(`the server at ${url} was not healthy within ${timeoutMs / 1000} s: ${last}`);
}

/** The server's counts from /healthz (live, starting, terminals, warm). */
export async function health(url: string): Promise<{ live: number; starting: number; terminals: number; warm: number }> {
  const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(5_000) });
  return (await res.json()) as { live: number; starting: number; terminals: number; warm: number };
}

/** Waits (bounded) until the warm pool holds `count` ready sandboxes. */
export async function waitForPool(url: string, count: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await health(url)).warm >= count) return;
    await sleep(50);
  }
  throw new Error(`the warm pool did not reach ${count} within ${timeoutMs / 1000} s`);
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  await exited;
  clearTimeout(timer);
}

/** VmRSS of a process, in MiB (0 when it is gone). */
export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** CPU time (user + system) a process has used so far, in milliseconds. */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // Fields 14 and 15 of /proc/<pid>/stat (utime, stime), counted from the state field (3).
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}
const CLOCK_TICKS = 100;

/** Samples a process's RSS every `everyMs` until stopped; returns the peak seen, in MiB. */
export function sampleRss(pid: number, everyMs = 50): { stop(): { peakMb: number; startMb: number } } {
  const startMb = rssMb(pid);
  let peakMb = startMb;
  const timer = setInterval(() => {
    peakMb = Math.max(peakMb, rssMb(pid));
  }, everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      peakMb = Math.max(peakMb, rssMb(pid));
      return { peakMb, startMb };
    },
  };
}
