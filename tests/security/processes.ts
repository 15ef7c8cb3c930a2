/**
 * Real processes for the fault suite: the server as a child process (SIGKILL-able), a private
 * Docker engine that can be stopped and started without touching the machine's own engine, and a
 * TCP proxy whose "network" can be blacked out.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer, connect, type Server, type Socket } from "node:net";
import path from "node:path";
import { repoRoot } from "../support/server.ts";
import { securityEnv, sleep } from "./support.ts";

export interface ServerProcess {
  url: string;
  port: number;
  env: Record<string, string>;
  pid(): number;
  output(): string;
  /** SIGKILL: no shutdown code runs, like a crash or the OOM killer. */
  crash(): Promise<void>;
  /** Starts it again on the same port and data directory. */
  start(): Promise<void>;
  /** SIGTERM, as `./shipshape start` is stopped: the server shuts down cleanly and keeps its data directory. */
  terminate(): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => resolve(typeof a === "object" && a ? a.port : 0));
    });
  });
}

/**
 * `node sandbox-server/src/main.ts` with a test environment of its own. start() waits until the
 * server answers /healthz at all (200, or 503 when its engine is down): it is listening.
 */
export async function spawnServer(overrides: Record<string, string> = {}): Promise<ServerProcess> {
  const port = await freePort();
  const env = securityEnv({ PORT: String(port), SHIPSHAPE_LOG_LEVEL: "warn", ...overrides });
  const url = `http://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let output = "";
  const start = async () => {
    const c = spawn(process.execPath, [path.join(repoRoot, "sandbox-server/src/main.ts")], {
      cwd: repoRoot,
      env: { ...process.env, ...env } as NodeJS.ProcessEnv,
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = c;
    const collect = (b: Buffer) => {
      output = (output + b.toString("utf8")).slice(-200_000);
      if (process.env.SHIPSHAPE_TEST_LOGS) process.stderr.write(b);
    };
    c.stdout?.on("data", collect);
    c.stderr?.on("data", collect);
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (c.exitCode !== null) throw new Error(`the server exited with ${c.exitCode}:\n${output}`);
      const status = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) }).then((r) => r.status, () => 0);
      if (status === 200 || status === 503) return;
      await sleep(150);
    }
    throw new Error(`the server did not listen within 60 s:\n${output}`);
  };
  const exited = (c: ChildProcess) =>
    c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => c.once("exit", () => r()));
  const server: ServerProcess = {
    url,
    port,
    env,
    pid: () => child?.pid ?? -1,
    output: () => output,
    start,
    crash: async () => {
      if (!child) return;
      const done = exited(child);
      child.kill("SIGKILL");
      await done;
    },
    terminate: async () => {
      if (!child) return;
      const c = child;
      const done = exited(c);
      c.kill("SIGTERM");
      const force = setTimeout(() => c.kill("SIGKILL"), 15_000);
      await done;
      clearTimeout(force);
    },
    stop: async () => {
      if (!child) return;
      const c = child;
      const done = exited(c);
      c.kill("SIGTERM");
      const force = setTimeout(() => c.kill("SIGKILL"), 10_000);
      await done;
      clearTimeout(force);
      rmSync(env.SHIPSHAPE_DATA_DIR!, { recursive: true, force: true });
    },
  };
  await start();
  return server;
}

/**
 * A second Docker engine on this machine, for restarting an engine under a running server without
 * stopping everyone else's containers. Its own data root, exec root, socket and bridge; no
 * iptables rules (its sandboxes need no network beyond their own). Every dockerd it starts runs
 * under `timeout`, so it stops by itself even if the test process dies.
 */
export class PrivateEngine {
  readonly root = "/var/lib/shipshape-fault-engine";
  readonly run = "/run/shipshape-fault-engine";
  readonly socket = `${this.run}/docker.sock`;
  readonly host = `unix://${this.socket}`;
  readonly network = "shipshape-sandboxes";
  readonly log = path.join(this.run, "dockerd.log");
  private child: ChildProcess | undefined;

  /** Why this machine cannot run one, or undefined when it can. */
  static unavailable(): string | undefined {
    if (process.getuid?.() !== 0) return "needs root to run a second dockerd";
    if (spawnSync("sh", ["-c", "command -v dockerd && command -v timeout"], { encoding: "utf8" }).status !== 0) return "no dockerd binary";
    return undefined;
  }

  docker(args: string[], input?: Buffer): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync("docker", ["-H", this.host, ...args], { encoding: "utf8", input, timeout: 180_000, maxBuffer: 64 * 1024 ** 2 });
    return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(): Promise<void> {
    mkdirSync(this.root, { recursive: true });
    mkdirSync(this.run, { recursive: true });
    rmSync(this.socket, { force: true });
    const logFd = openSync(this.log, "a");
    // `timeout` bounds its life (15 min); the test stops it long before.
    this.child = spawn(
      "timeout",
      [
        "-k", "10", "900",
        "dockerd",
        "--data-root", this.root,
        "--exec-root", `${this.run}/exec`,
        "--pidfile", `${this.run}/dockerd.pid`,
        "-H", this.host,
        "--iptables=false", "--ip-masq=false", "--bridge=none",
        "--cgroup-parent", "/shipshape-fault-engine",
      ],
      { stdio: ["ignore", logFd, logFd] },
    );
    closeSync(logFd);
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`the private dockerd exited:\n${this.tail()}`);
      if (this.docker(["version", "--format", "{{.Server.Version}}"]).status === 0) return;
      await sleep(200);
    }
    throw new Error(`the private dockerd did not answer within 30 s:\n${this.tail()}`);
  }

  /** The engine stops the way `systemctl stop docker` stops it: SIGTERM, containers stopped. */
  async stop(): Promise<void> {
    const pidFile = `${this.run}/dockerd.pid`;
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8").trim()) : 0;
    if (pid > 0) {
      try {
        process.kill(pid, "SIGTERM");
      } catch {
        /* already gone */
      }
    }
    const deadline = Date.now() + 40_000;
    while (this.running && Date.now() < deadline) await sleep(100);
    if (this.running) this.child?.kill("SIGKILL");
    this.child = undefined;
  }

  /** The sandbox image, copied from the machine's engine once (kept in the data root afterwards). */
  ensureImage(image: string): void {
    if (this.docker(["image", "inspect", image]).status === 0) return;
    const saved = spawnSync("docker", ["save", image], { timeout: 180_000, maxBuffer: 2 * 1024 ** 3 });
    if (saved.status !== 0) throw new Error(`docker save ${image} failed: ${saved.stderr}`);
    const loaded = this.docker(["load"], saved.stdout);
    if (loaded.status !== 0) throw new Error(`loading ${image} into the private engine failed: ${loaded.stderr}`);
  }

  ensureNetwork(): void {
    if (this.docker(["network", "inspect", this.network]).status === 0) return;
    const r = this.docker([
      "network", "create", "--driver", "bridge",
      "--subnet", "10.219.0.0/24",
      "--opt", "com.docker.network.bridge.name=shipshapeflt0",
      "--opt", "com.docker.network.bridge.enable_icc=false",
      this.network,
    ]);
    if (r.status !== 0) throw new Error(`creating the private engine's network failed: ${r.stderr}`);
  }

  /** Removes every container and volume of a label namespace (the test's own). */
  clean(namespace: string): void {
    const ids = this.docker(["ps", "-aq", "--filter", `label=org.shipshape.namespace=${namespace}`]).stdout.split("\n").filter(Boolean);
    if (ids.length) this.docker(["rm", "-f", "-v", ...ids]);
    const vols = this.docker(["volume", "ls", "-q", "--filter", `label=org.shipshape.namespace=${namespace}`]).stdout.split("\n").filter(Boolean);
    if (vols.length) this.docker(["volume", "rm", "-f", ...vols]);
  }

  private tail(): string {
    return existsSync(this.log) ? readFileSync(this.log, "utf8").slice(-2_000) : "(no log)";
  }
}

/**
 * A TCP proxy between a browser and the server. blackout() stops moving bytes both ways and holds
 * new connections, as a dead Wi-Fi link does (TCP keeps the data; nothing arrives); restore()
 * delivers everything held, in order, and lets traffic through again.
 */
export class BlackoutProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly flushes = new Set<() => void>();
  private held: Array<() => void> = [];
  private dark = false;
  port = 0;
  private readonly target: { host: string; port: number };

  constructor(target: { host: string; port: number }) {
    this.target = target;
  }

  /** Moves bytes and the end of stream from one side to the other, holding them while dark. */
  private forward(from: Socket, to: Socket): void {
    const queue: Array<Buffer | null> = [];
    const deliver = (item: Buffer | null) => (item === null ? to.end() : to.write(item));
    const flush = () => {
      for (const item of queue.splice(0)) deliver(item);
      from.resume();
    };
    this.flushes.add(flush);
    from.on("data", (chunk: Buffer) => {
      if (this.dark) {
        queue.push(chunk);
        from.pause(); // the rest waits in the kernel, as on a real link
      } else deliver(chunk);
    });
    from.on("end", () => (this.dark ? queue.push(null) : deliver(null)));
    from.on("close", () => this.flushes.delete(flush));
  }

  /** Listens on `port` (0: any free one); the page's Host names this port, so the server's public URL must too. */
  async listen(port = 0): Promise<string> {
    this.server = createServer((client) => {
      this.sockets.add(client);
      client.on("error", () => {});
      client.once("close", () => this.sockets.delete(client));
      const link = () => {
        const upstream = connect(this.target);
        this.sockets.add(upstream);
        upstream.once("close", () => this.sockets.delete(upstream));
        upstream.on("error", () => client.destroy());
        client.on("error", () => upstream.destroy());
        client.once("close", () => upstream.destroy());
        upstream.once("close", () => (this.dark ? undefined : client.destroy()));
        this.forward(client, upstream);
        this.forward(upstream, client);
        client.resume();
      };
      if (this.dark) {
        client.pause(); // like a SYN that gets no answer until the link is back
        this.held.push(link);
      } else link();
    });
    await new Promise<void>((r) => this.server!.listen(port, "127.0.0.1", () => r()));
    const a = this.server.address();
    this.port = typeof a === "object" && a ? a.port : 0;
    return `http://127.0.0.1:${this.port}`;
  }

  blackout(): void {
    this.dark = true;
  }

  restore(): void {
    this.dark = false;
    for (const link of this.held.splice(0)) link();
    for (const flush of [...this.flushes]) flush();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
