/**
 * Helpers for the security project: the documented attack table, host-side views of a sandbox
 * (its cgroup files, the firewall's counters), listeners on the host, and bounded waiting.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import path from "node:path";
import { repoRoot, testEnv } from "../support/server.ts";

/**
 * A server environment for this suite: like the integration tests', but with empty lesson
 * content, so lessons being written in the same tree cannot stop these servers from starting.
 */
export function securityEnv(overrides: Record<string, string> = {}): Record<string, string> {
  const content = mkdtempSync(path.join(tmpdir(), "shipshape-security-content-"));
  mkdirSync(path.join(content, "exercises"));
  mkdirSync(path.join(content, "lessons"));
  // "s…" namespaces: anything this suite ever leaves behind is recognisable as its own.
  const namespace = `s${Math.random().toString(36).slice(2, 10)}`;
  return testEnv({ SHIPSHAPE_CONTENT_DIR: content, SHIPSHAPE_NAMESPACE: namespace, ...overrides });
}

export type Verdict = "contained" | "open";

export interface DocumentedAttack {
  id: string;
  attack: string;
  classroom: Verdict;
  /** The isolated tier's result, or "not tested" where no test here proves one (isolated-tier.test.ts checks which). */
  isolated: Verdict | "not tested";
  closedIn: string;
  line: number;
  /** The file whose probe proves the row: the one the row names (`tests/security/x.test.ts`), else attacks.test.ts. */
  probedIn: string;
}

/**
 * The attack table of docs/security.md: rows like
 * | `id` | attack | contained/open | how it is held, or why it is open | closed in |
 */
export function documentedAttacks(file = path.join(repoRoot, "docs", "security.md")): Map<string, DocumentedAttack> {
  const rows = new Map<string, DocumentedAttack>();
  readFileSync(file, "utf8")
    .split("\n")
    .forEach((line, index) => {
      const cells = line.split("|").map((c) => c.trim());
      const id = /^`([a-z0-9-]+)`$/.exec(cells[1] ?? "")?.[1];
      if (!id) return;
      const classroom = (cells[3] ?? "").replace(/\*/g, "").toLowerCase();
      if (classroom !== "contained" && classroom !== "open") {
        throw new Error(`docs/security.md:${index + 1}: the classroom result of ${id} must be "contained" or "open", not "${cells[3]}"`);
      }
      const isolated = (cells[4] ?? "").replace(/\*/g, "").toLowerCase();
      if (isolated !== "contained" && isolated !== "open" && isolated !== "not tested") {
        throw new Error(`docs/security.md:${index + 1}: the isolated result of ${id} must be "contained", "open" or "not tested", not "${cells[4]}"`);
      }
      if (rows.has(id)) throw new Error(`docs/security.md:${index + 1}: attack ${id} is listed twice`);
      const probedIn = /`tests\/security\/([a-z0-9-]+\.test\.ts)`/.exec(cells[5] ?? "")?.[1] ?? "attacks.test.ts";
      rows.set(id, { id, attack: cells[2] ?? "", classroom, isolated, closedIn: cells[6] ?? "", line: index + 1, probedIn });
    });
  return rows;
}

/** IPv4 addresses of this machine (every interface but loopback): where host services listen. */
export function hostAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) out.push(a.address);
  }
  return [...new Set(out)];
}

/** A TCP service on every address of the host that answers `banner` to anyone who connects. */
export async function hostListener(banner: string): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  const server: Server = createServer((socket) => {
    connections++;
    socket.on("error", () => {});
    socket.end(`HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\n${banner}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "0.0.0.0", () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    port,
    connections: () => connections,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * The directory of a container's cgroup on the host for one controller (cgroup v1 layout, or the
 * unified v2 tree), found by its id. Throws with what was searched when there is none.
 */
export function hostCgroupDir(controller: string, containerId: string): string {
  const roots = [path.join("/sys/fs/cgroup", controller), "/sys/fs/cgroup"];
  for (const root of roots) {
    if (!existsSync(root)) continue;
    const found = findDir(root, containerId, 4);
    if (found) return found;
  }
  throw new Error(`no cgroup directory for container ${containerId.slice(0, 12)} under ${roots.join(" or ")}`);
}

function findDir(dir: string, id: string, depth: number): string | undefined {
  let entries: string[];
  try {
    entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return undefined;
  }
  for (const name of entries) if (name === id || name === `docker-${id}.scope`) return path.join(dir, name);
  if (depth === 0) return undefined;
  for (const name of entries) {
    if (name === "sandbox") continue; // the sandbox's own nested cgroup is below, never the container's
    const found = findDir(path.join(dir, name), id, depth - 1);
    if (found) return found;
  }
  return undefined;
}

export function readCgroupFile(controller: string, containerId: string, file: string): string {
  return readFileSync(path.join(hostCgroupDir(controller, containerId), file), "utf8").trim();
}

/**
 * Packets counted by the host firewall rule of `chain` that drops `destination`, or undefined
 * when the rules cannot be read here (no iptables, not root).
 */
export function firewallDrops(chain: string, destination: string): number | undefined {
  for (const bin of ["iptables", "iptables-nft", "iptables-legacy"]) {
    const r = spawnSync(bin, ["-w", "-nvxL", chain], { encoding: "utf8", timeout: 10_000 });
    if (r.status !== 0) continue;
    for (const line of r.stdout.split("\n")) {
      const f = line.trim().split(/\s+/);
      if (f[2] === "DROP" && f.includes(destination)) return Number(f[0]);
    }
  }
  return undefined;
}

/** The ID the host's own Docker engine reports (`docker info`), to recognise it from a sandbox. */
export function hostEngineId(): string {
  return execFileSync("docker", ["info", "--format", "{{.ID}}"], { encoding: "utf8" }).trim();
}

/**
 * What the engine holds for a label namespace, counted with the docker CLI as an operator would.
 * A sandbox's kept grading probe belongs to it (issue 18) and is not counted while its sandbox is
 * there; a probe whose sandbox is gone is a leak and is.
 */
export function leftovers(namespace: string): { containers: number; volumes: number; networks: number } {
  const label = `label=org.shipshape.namespace=${namespace}`;
  const count = (args: string[]) => execFileSync("docker", args, { encoding: "utf8" }).split("\n").filter(Boolean).length;
  const rows = execFileSync("docker", ["ps", "-a", "--filter", label, "--format", '{{.Label "org.shipshape.role"}}\t{{.Label "org.shipshape.session"}}'], { encoding: "utf8" })
    .split("\n")
    .filter(Boolean)
    .map((l) => l.split("\t") as [string, string]);
  const sandboxSessions = new Set(rows.filter(([role]) => role === "sandbox").map(([, session]) => session));
  return {
    containers: rows.filter(([role, session]) => role !== "probe" || !sandboxSessions.has(session)).length,
    volumes: count(["volume", "ls", "-q", "--filter", label]),
    networks: count(["network", "ls", "-q", "--filter", label]),
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `read` until `ok` holds, at most `timeoutMs`; returns the last value either way. */
export async function pollUntil<T>(read: () => T | Promise<T>, ok: (v: T) => boolean, timeoutMs: number, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await read();
  while (!ok(value) && Date.now() < deadline) {
    await sleep(everyMs);
    value = await read();
  }
  return value;
}

/** A seeded PRNG (mulberry32), so a failing fuzz run can be repeated with its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
