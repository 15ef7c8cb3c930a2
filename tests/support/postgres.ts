import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

/**
 * A real Postgres for tests: Debian's postgresql-15, a fresh cluster initialised into a temporary
 * directory, listening on a free loopback port. Postgres refuses to run as root, so when the tests
 * run as root the cluster belongs to the `postgres` user (runuser). Missing binaries are an error
 * that says how to install them, never a skip.
 */
export interface TestPostgres {
  url: string;
  port: number;
  /** Stops the server (fast shutdown: connections are cut, as in a crash of the database host). */
  stop(): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
  /** Stops it and removes its files. */
  destroy(): Promise<void>;
}

function binDir(): string {
  const base = "/usr/lib/postgresql";
  const versions = existsSync(base) ? readdirSync(base).filter((v) => existsSync(path.join(base, v, "bin", "initdb"))) : [];
  const version = versions.includes("15") ? "15" : versions.sort().at(-1);
  if (!version) throw new Error("Postgres is not installed: apt-get install postgresql-15 (the scale-out tests need a real one).");
  return path.join(base, version, "bin");
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export async function startTestPostgres(): Promise<TestPostgres> {
  const bin = binDir();
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(path.join(tmpdir(), "shipshape-pg-"));
  const data = path.join(dir, "data");
  // The cluster's owner must be able to reach the directory.
  chmodSync(dir, 0o777);
  const as = (cmd: string, args: string[]) => (asRoot ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] : [cmd, args]) as [string, string[]];
  const run = (cmd: string, args: string[]) => {
    const [c, a] = as(cmd, args);
    return execFileSync(c, a, { stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 }).toString();
  };
  run(path.join(bin, "initdb"), ["-D", data, "-U", "shipshape", "--auth=trust", "-E", "UTF8", "--no-sync", "-N"]);
  const port = await freePort();
  const ctl = path.join(bin, "pg_ctl");
  const options = [
    `-p ${port} -h 127.0.0.1 -k ${dir}`,
    // A test database: durability is not what is measured.
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100",
  ].join(" ");
  const start = async () => {
    try {
      run(ctl, ["-D", data, "-l", path.join(dir, "postgres.log"), "-o", options, "-w", "-t", "30", "start"]);
    } catch (e) {
      throw new Error(`Postgres did not start: ${String((e as { stderr?: Buffer }).stderr ?? e)}`);
    }
  };
  // "fast": every client connection is cut, as when the database host restarts.
  const stop = async () => {
    try {
      run(ctl, ["-D", data, "-m", "fast", "-w", "-t", "30", "stop"]);
    } catch {
      // Not running.
    }
  };
  await start();
  run(path.join(bin, "createdb"), ["-h", "127.0.0.1", "-p", String(port), "-U", "shipshape", "shipshape"]);
  return {
    url: `postgres://shipshape@127.0.0.1:${port}/shipshape`,
    port,
    stop,
    start,
    destroy: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A new, empty database on the same server, for a test that must start from nothing. */
export function createDatabase(pg: TestPostgres, name: string): string {
  const bin = binDir();
  const args = ["-h", "127.0.0.1", "-p", String(pg.port), "-U", "shipshape", name];
  if (process.getuid?.() === 0) execFileSync("runuser", ["-u", "postgres", "--", path.join(bin, "createdb"), ...args], { stdio: "ignore" });
  else execFileSync(path.join(bin, "createdb"), args, { stdio: "ignore" });
  return pg.url.replace(/\/shipshape$/, `/${name}`);
}
