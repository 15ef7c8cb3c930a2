import { readFile } from "node:fs/promises";
import { request } from "node:http";
import { Duplex, PassThrough } from "node:stream";
import WebSocket from "ws";
import { ShipshapeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { Capped, enginePolls, WAIT_FOR_ENGINE } from "./docker-runtime.ts";
import { findLxdEngine, openLxdProbe, type LxdEngine } from "./lxd-probe.ts";
import { buildLxdInstance, pickSandboxAddress, USER_KEY, type LxdAddressing, type LxdProfile } from "./lxd-instance-spec.ts";
import type {
  ExecOptions,
  ExecResult,
  ExecStream,
  SandboxEvent,
  SandboxInfo,
  SandboxProbe,
  SandboxRuntime,
  SandboxSpec,
  SandboxUsage,
  ShellOptions,
  ShellStream,
  StartProgress,
} from "./types.ts";
import { MEMBER_LOST_MESSAGE } from "./types.ts";

const ENGINE_READY_TIMEOUT_MS = 30_000;
const RESIZE_SETTLE_MS = 50;
const OOM_POLL_MS = 2_000;
/** How often cluster members' health is read while sandboxes are watched (LXD itself marks a silent member offline after cluster.offline_threshold). */
const MEMBER_POLL_MS = 3_000;
/** Shell names become socket paths inside the sandbox: keep them boring. */
const terminalNamePattern = /^[a-z0-9-]{1,32}$/;

export interface LxdRuntimeOptions extends LxdProfile {
  /** LXD's (or Incus's) Unix socket: /var/lib/lxd/unix.socket for Debian's LXD, /var/lib/incus/unix.socket for Incus. */
  socketPath: string;
  /**
   * On an LXD cluster: the member every new sandbox is created on (SHIPSHAPE_LXD_TARGET). Unset,
   * LXD's own scheduler chooses (the member with the fewest instances), never a home-made one.
   */
  target?: string | undefined;
  log: Logger;
}

interface LxdResponse {
  type: "sync" | "async" | "error";
  status_code?: number;
  error_code?: number;
  error?: string;
  operation?: string;
  metadata?: unknown;
}

interface LxdOperation {
  id: string;
  status: string;
  status_code: number;
  err: string;
  metadata: Record<string, unknown> | null;
}

interface LxdInstance {
  name: string;
  status: string;
  created_at: string;
  /** The cluster member it lives on ("none" or "" outside a cluster). */
  location?: string;
  /** null for an instance on a member that is offline: only its name, status and location are known. */
  config: Record<string, string>;
  expanded_devices?: Record<string, Record<string, string>>;
  devices: Record<string, Record<string, string>>;
}

class LxdError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/**
 * The isolated tier: each sandbox is an unprivileged LXD system container (lxd-instance-spec.ts)
 * running the same entrypoint and inner dockerd as the Docker tier's sandbox. Talks to LXD's REST
 * API on its Unix socket; exec and shells go over the operation's WebSockets. Works with Incus too
 * (same API family), given its socket.
 */
export class LxdRuntime implements SandboxRuntime {
  readonly name = "lxd";
  private readonly profile: LxdProfile;
  private readonly socketPath: string;
  private readonly log: Logger;
  private readonly eventListeners = new Set<(id: string, event: SandboxEvent) => void>();
  private events: WebSocket | undefined;
  private closed = false;
  /** Addresses handed out by this process whose instances LXD may not list yet (parallel starts). */
  private readonly pendingAddresses = new Set<string>();
  private readonly target: string | undefined;

  constructor(options: LxdRuntimeOptions) {
    this.profile = { image: options.image, network: options.network, pool: options.pool, namespace: options.namespace };
    this.socketPath = options.socketPath;
    this.target = options.target || undefined;
    this.log = options.log.child({ component: "runtime" });
  }

  // ---- the REST API ----

  private api<T>(method: string, path: string, body?: unknown): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = request(
        {
          socketPath: this.socketPath,
          method,
          path,
          headers: payload ? { "content-type": "application/json", "content-length": payload.length } : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            let parsed: LxdResponse;
            try {
              parsed = JSON.parse(Buffer.concat(chunks).toString("utf8")) as LxdResponse;
            } catch (e) {
              return reject(new LxdError(res.statusCode ?? 500, `unreadable answer from LXD to ${method} ${path}: ${String(e)}`));
            }
            if (parsed.type === "error") return reject(new LxdError(parsed.error_code ?? res.statusCode ?? 500, parsed.error ?? "error"));
            if (parsed.type === "async") return resolve(parsed as T);
            resolve(parsed.metadata as T);
          });
          res.on("error", reject);
        },
      );
      req.setTimeout(120_000, () => req.destroy(new Error(`LXD did not answer ${method} ${path} within 120 s`)));
      req.on("error", reject);
      req.end(payload);
    });
  }

  /** Runs an async request and waits for its operation to finish; rejects with the operation's error. */
  private async operation(method: string, path: string, body?: unknown): Promise<LxdOperation> {
    const started = await this.api<LxdResponse>(method, path, body);
    if (!started.operation) return started.metadata as LxdOperation;
    const op = await this.api<LxdOperation>("GET", `${operationPath(started.operation)}/wait?timeout=120`);
    if (op.status_code >= 400) throw new LxdError(op.status_code, op.err || op.status);
    return op;
  }

  /**
   * One of an operation's WebSockets. Its messages are kept from the moment it opens until
   * `onMessage` takes them: LXD starts the command as soon as the last socket is connected, and its
   * first output can arrive on another socket before our code has looked at it.
   */
  private websocket(operation: string, secret: string): Promise<ExecSocket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws+unix://${this.socketPath}:${operation}/websocket?secret=${encodeURIComponent(secret)}`);
      ws.binaryType = "nodebuffer";
      ws.once("open", () => {
        ws.off("error", reject);
        ws.on("error", () => {});
        resolve(new ExecSocket(ws));
      });
      ws.once("error", reject);
    });
  }

  async ping(): Promise<void> {
    try {
      await this.api("GET", "/1.0");
    } catch (e) {
      throw engineUnavailable(e, this.socketPath);
    }
    try {
      await this.api("GET", `/1.0/images/aliases/${encodeURIComponent(this.profile.image)}`);
    } catch (e) {
      throw new ShipshapeError(
        "engine_unavailable",
        "The sandbox image is missing on this server.",
        `LXD image alias ${this.profile.image} not found; run SHIPSHAPE_TIER=isolated ./shipshape setup`,
        { cause: e },
      );
    }
  }

  // ---- lifecycle ----

  async create(spec: SandboxSpec, onProgress: (p: StartProgress) => void = () => {}): Promise<SandboxInfo> {
    const createdAt = Date.now();
    onProgress({ step: "Creating your sandbox", progress: 0.1 });
    let name: string | undefined;
    let address: string | undefined;
    try {
      const addressing = await this.allocateAddress();
      address = addressing.ipv4.split("/")[0]!;
      const body = buildLxdInstance(spec, this.profile, addressing, createdAt, await this.imageBytes());
      name = body.name;
      // Placement is LXD's: its scheduler picks a member unless an operator pinned one.
      await this.operation("POST", `/1.0/instances${this.target ? `?target=${encodeURIComponent(this.target)}` : ""}`, body);
      onProgress({ step: "Starting the container", progress: 0.3 });
      await this.operation("PUT", `/1.0/instances/${name}/state`, { action: "start", timeout: 30 });
    } catch (e) {
      if (name) await this.destroy(name).catch(() => {});
      throw this.translateCreateError(e);
    } finally {
      if (address) this.pendingAddresses.delete(address);
    }
    onProgress({ step: "Starting its Docker engine", progress: 0.5 });
    try {
      await this.waitForInnerEngine(name, onProgress);
    } catch (e) {
      // A sandbox that never became usable is nobody's: remove it now, not at the next reap.
      await this.destroy(name).catch(() => {});
      throw e;
    }
    onProgress({ step: "Ready", progress: 1 });
    const info = await this.inspect(name);
    if (!info) throw new ShipshapeError("sandbox_failed", "Your sandbox stopped while it was starting. Try again.");
    this.ensureEventWatch();
    return info;
  }

  private imageSize: number | undefined;
  /** The sandbox image's size, which the disk quota must leave room for (rootDiskBytes). */
  private async imageBytes(): Promise<number> {
    if (this.imageSize === undefined) {
      const alias = await this.api<{ target: string }>("GET", `/1.0/images/aliases/${encodeURIComponent(this.profile.image)}`);
      const image = await this.api<{ size: number }>("GET", `/1.0/images/${alias.target}`);
      this.imageSize = image.size;
    }
    return this.imageSize;
  }

  /** A fixed address nobody holds: every instance on the bridge (any namespace) and this process's pending ones. */
  private async allocateAddress(): Promise<LxdAddressing> {
    const bridge = await this.bridge();
    const instances = await this.api<LxdInstance[]>("GET", "/1.0/instances?recursion=1");
    const taken = new Set(this.pendingAddresses);
    for (const i of instances) {
      for (const d of Object.values(i.devices ?? {})) if (d["ipv4.address"]) taken.add(d["ipv4.address"]);
    }
    const picked = pickSandboxAddress(bridge.range, taken, Math.random, bridge.unmanaged ? "all" : "upper-half").split("/")[0]!;
    this.pendingAddresses.add(picked);
    return { ipv4: `${picked}/${bridge.prefix}`, gateway: bridge.gateway, registryIp: bridge.registryIp, unmanagedBridge: bridge.unmanaged };
  }

  /**
   * The bridge's gateway, prefix and registry mirror, and the range sandbox addresses come from.
   * A managed bridge (one machine, or every member of a real cluster) says it all in its config.
   * A host bridge LXD only attaches to (the members of a one-machine test cluster share the host
   * LXD's bridge) has no config: its address comes from its state, and the registry mirror and a
   * range of its own (so the host's sandboxes and the cluster's never pick the same address) from
   * the cluster's `user.shipshape.registry-ip` and `user.shipshape.sandbox-range` server keys.
   */
  private async bridge(): Promise<{ range: string; prefix: string; gateway: string; registryIp: string; unmanaged: boolean }> {
    const path = `/1.0/networks/${encodeURIComponent(this.profile.network)}`;
    const network = await this.api<{ managed?: boolean; config: Record<string, string> }>("GET", path);
    if (network.managed !== false) {
      const cidr = network.config["ipv4.address"] ?? "";
      return { range: cidr, prefix: cidr.split("/")[1] ?? "", gateway: cidr.split("/")[0]!, registryIp: network.config["user.shipshape.registry-ip"] ?? "", unmanaged: false };
    }
    const state = await this.api<{ addresses?: { family: string; address: string; netmask: string }[] }>("GET", `${path}/state`);
    const inet = state.addresses?.find((a) => a.family === "inet");
    const server = await this.api<{ config?: Record<string, unknown> }>("GET", "/1.0");
    const range = String(server.config?.["user.shipshape.sandbox-range"] ?? "");
    if (!inet || !range) {
      throw new ShipshapeError(
        "sandbox_failed",
        "The sandbox network is not set up on this server. The operator should run set-up again.",
        `LXD network ${this.profile.network} is a host bridge (not managed by LXD): it needs an IPv4 address and the server key user.shipshape.sandbox-range`,
      );
    }
    return { range, prefix: inet.netmask, gateway: inet.address, registryIp: String(server.config?.["user.shipshape.registry-ip"] ?? ""), unmanaged: true };
  }

  /** Same single polling exec as the Docker tier's (docker-runtime.ts, WAIT_FOR_ENGINE). */
  private async waitForInnerEngine(name: string, onProgress: (p: StartProgress) => void): Promise<void> {
    const started = Date.now();
    const deadline = started + ENGINE_READY_TIMEOUT_MS;
    const progress = setInterval(() => {
      const elapsed = Date.now() - started;
      onProgress({ step: "Starting its Docker engine", progress: Math.min(0.95, 0.5 + elapsed / ENGINE_READY_TIMEOUT_MS) });
    }, 250);
    let last = "";
    try {
      while (Date.now() < deadline) {
        const r = await this.exec(name, ["sh", "-c", WAIT_FOR_ENGINE, "sh", String(enginePolls(deadline - Date.now()))], {
          timeoutMs: deadline - Date.now() + 10_000,
        }).catch((e: unknown) => ({ exitCode: -1, stdout: "", stderr: String(e), timedOut: false, truncated: false }));
        if (r.exitCode === 0) return;
        last = r.stderr.trim() || last;
        const info = await this.inspect(name);
        if (!info?.running) throw new ShipshapeError("sandbox_failed", "Your sandbox stopped while it was starting. Try again.", last);
        await sleep(100);
      }
    } finally {
      clearInterval(progress);
    }
    throw new ShipshapeError(
      "sandbox_failed",
      "Your sandbox's Docker engine did not start in time. Try again in a minute.",
      `inner dockerd not answering after ${ENGINE_READY_TIMEOUT_MS} ms: ${last}`,
    );
  }

  async inspect(sandboxId: string): Promise<SandboxInfo | null> {
    let instance: LxdInstance;
    try {
      instance = await this.api<LxdInstance>("GET", `/1.0/instances/${encodeURIComponent(sandboxId)}`);
    } catch (e) {
      if (e instanceof LxdError && e.status === 404) return null;
      // On a cluster the member holding it may be gone: then the sandbox is, for its learner.
      if (e instanceof LxdError) {
        const lost = await this.lostSandbox(sandboxId).catch(() => undefined);
        if (lost) return lost;
      }
      throw this.translateEngineError(e);
    }
    return this.toInfo(instance);
  }

  /** The sandbox as a stopped one when the cluster member it lives on is offline; undefined otherwise. */
  private async lostSandbox(sandboxId: string): Promise<SandboxInfo | undefined> {
    const listed = (await this.api<LxdInstance[]>("GET", "/1.0/instances?recursion=1")).find((i) => i.name === sandboxId);
    if (!listed?.location || listed.location === "none") return undefined;
    const member = await this.api<{ status: string }>("GET", `/1.0/cluster/members/${encodeURIComponent(listed.location)}`);
    if (member.status === "Online" || (await this.answers(sandboxId))) return undefined;
    return this.toInfo({ ...listed, status: "Error", config: null as unknown as Record<string, string> }) ?? undefined;
  }

  /**
   * Whether LXD can still reach a sandbox (its state comes from the member holding it). A member's
   * status alone is not taken as proof: once in our tests (a freshly made cluster, one member
   * killed) a learner on the healthy member was told their machine stopped, cause not found; a
   * learner must never lose a sandbox that still answers.
   */
  private async answers(sandboxId: string): Promise<boolean> {
    try {
      await this.api("GET", `/1.0/instances/${encodeURIComponent(sandboxId)}/state`);
      return true;
    } catch {
      return false;
    }
  }

  private toInfo(i: LxdInstance): SandboxInfo | null {
    const member = i.location && i.location !== "none" ? i.location : undefined;
    const prefix = `shipshape-${this.profile.namespace}-`;
    if (!i.config) {
      // An instance on an offline cluster member: LXD knows its name and member only. Ours by name;
      // the session id is in the name (lxdInstanceName), which is all the reaper and the watchdog need.
      if (!i.name.startsWith(prefix)) return null;
      return {
        id: i.name,
        name: i.name,
        sessionId: i.name.slice(prefix.length),
        ownerId: "",
        workshopId: undefined,
        createdAt: 0,
        expiresAt: 0,
        running: false,
        address: undefined,
        exitReason: "member-lost",
        member,
      };
    }
    const c = i.config;
    if (c[USER_KEY.role] !== "sandbox" || c[USER_KEY.namespace] !== this.profile.namespace) return null;
    const running = i.status === "Running";
    const nic = (i.expanded_devices ?? i.devices)["eth0"];
    return {
      id: i.name,
      name: i.name,
      sessionId: c[USER_KEY.session] ?? "",
      ownerId: c[USER_KEY.owner] ?? "",
      workshopId: c[USER_KEY.workshop] || undefined,
      createdAt: Date.parse(c[USER_KEY.createdAt] ?? "") || Date.parse(i.created_at),
      expiresAt: Date.parse(c[USER_KEY.expiresAt] ?? "") || 0,
      running,
      address: running ? nic?.["ipv4.address"] : undefined,
      // LXD does not say why a container stopped; OOM kills hit processes inside, not the container.
      exitReason: running ? undefined : i.status.toLowerCase(),
      member,
    };
  }

  async destroy(sandboxId: string): Promise<void> {
    const path = `/1.0/instances/${encodeURIComponent(sandboxId)}`;
    // Stop, then delete. Either can lose a race (another destroy of the same sandbox, LXD still
    // running the stop hooks, a start still under way), so both are tried again together.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.operation("PUT", `${path}/state`, { action: "stop", force: true, timeout: 30 });
      } catch (e) {
        if (e instanceof LxdError && e.status === 404) return;
        // "The instance is already stopped": go on to delete it.
      }
      try {
        await this.operation("DELETE", path);
        return;
      } catch (e) {
        if (e instanceof LxdError && e.status === 404) return;
        // On a cluster member that is offline nothing can be removed until it returns: say so at
        // once rather than after every retry (the reaper removes it when the member is back).
        if (attempt === 1 && e instanceof LxdError && (await this.lostSandbox(sandboxId).catch(() => undefined))) {
          throw new ShipshapeError("engine_unavailable", "The machine this sandbox ran on is offline.", `sandbox ${sandboxId}: its cluster member is offline; it is removed when the member returns`);
        }
        if (attempt >= 5) throw this.translateEngineError(e);
        this.log.debug("retrying the removal of a sandbox", { sandbox: sandboxId, error: String(e) });
        await sleep(200 * attempt);
      }
    }
  }

  async list(): Promise<SandboxInfo[]> {
    let instances: LxdInstance[];
    try {
      instances = await this.api<LxdInstance[]>("GET", "/1.0/instances?recursion=1");
    } catch (e) {
      throw this.translateEngineError(e);
    }
    return instances.map((i) => this.toInfo(i)).filter((i): i is SandboxInfo => i !== null);
  }

  /** A sandbox's storage is its instance's root disk, which LXD deletes with the instance. */
  async removeOrphanedStorage(): Promise<number> {
    return 0;
  }

  async usage(sandboxId: string, options: { disk?: boolean } = {}): Promise<SandboxUsage> {
    let state: { memory?: { usage?: number }; processes?: number; disk?: Record<string, { usage?: number }> };
    try {
      state = await this.api("GET", `/1.0/instances/${encodeURIComponent(sandboxId)}/state`);
    } catch (e) {
      throw this.translateSandboxError(e, sandboxId);
    }
    return {
      memoryBytes: state.memory?.usage ?? 0,
      pids: Math.max(0, state.processes ?? 0),
      // btrfs qgroup usage of the root disk: the inner engine's storage and everything else written.
      diskBytes: options.disk ? (state.disk?.["root"]?.usage ?? undefined) : undefined,
    };
  }

  // ---- commands ----

  async shell(sandboxId: string, options: ShellOptions): Promise<ShellStream> {
    if (!terminalNamePattern.test(options.terminal)) {
      throw new ShipshapeError("bad_request", "A terminal name may only use a-z, 0-9 and '-'.");
    }
    // dtach keeps the shell alive when this attachment ends (reload, server restart), exactly as in
    // the Docker tier (docker-runtime.ts shell() explains the flags).
    const socket = `/run/shipshape/term-${options.terminal}.sock`;
    const session = await this.startExec(sandboxId, ["sh", "-c", 'mkdir -p /run/shipshape && exec dtach -A "$0" -E -z -r winch bash -l', socket], {
      interactive: true,
      env: { TERM: "xterm-256color", COLUMNS: String(options.cols), LINES: String(options.rows) },
      width: options.cols,
      height: options.rows,
    });
    const pty = session.sockets["0"]!;
    const control = session.sockets["control"]!;
    const stream = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        if (pty.ws.readyState !== WebSocket.OPEN) return callback(new Error("the shell has ended"));
        pty.ws.send(chunk, { binary: true }, callback);
      },
      destroy(error, callback) {
        pty.ws.close();
        control.ws.close();
        callback(error);
      },
    });
    pty.onMessage((data) => stream.push(data));
    pty.ws.once("close", () => {
      stream.push(null);
      control.ws.close();
    });
    return {
      stream,
      resize: async (cols, rows) => {
        if (control.ws.readyState !== WebSocket.OPEN) return;
        await new Promise<void>((resolve) =>
          control.ws.send(JSON.stringify({ command: "window-resize", args: { width: String(cols), height: String(rows) } }), () => resolve()),
        );
        // A control message returns at once, where Docker's resize is a round trip. Two sizes sent
        // back to back (the hub's redraw nudge) reached the shell as one signal with the size
        // unchanged, and readline redraws only on a change: give the shell time to see each one.
        await sleep(RESIZE_SETTLE_MS);
      },
      close: () => stream.destroy(),
    };
  }

  async exec(sandboxId: string, cmd: string[], options: ExecOptions = {}): Promise<ExecResult> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const maxBytes = options.maxOutputBytes ?? 1024 * 1024;
    const session = await this.startExec(sandboxId, cmd, { interactive: false, env: envObject(options.env) });
    const out = new Capped(maxBytes);
    const err = new Capped(maxBytes);
    const stdout = session.sockets["1"]!;
    const stderr = session.sockets["2"]!;
    stdout.onMessage((data) => out.push(data));
    stderr.onMessage((data) => err.push(data));
    // No input: end it now, so a command that reads standard input sees its end, as with docker exec.
    session.sockets["0"]!.ws.close();
    const timedOut = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(true), timeoutMs);
      session.finished.then(
        () => {
          clearTimeout(timer);
          resolve(false);
        },
        () => {
          clearTimeout(timer);
          resolve(false);
        },
      );
    });
    if (timedOut) session.kill();
    let failure = "";
    const exitCode = timedOut
      ? -1
      : await session.finished.catch((e: unknown) => {
          failure = `\n(the command could not run: ${e instanceof Error ? e.message : String(e)})`;
          return -1;
        });
    // Output still in flight when the operation ends arrives before the sockets close.
    await Promise.all([closed(stdout.ws), closed(stderr.ws)]);
    session.closeAll();
    return { exitCode, stdout: out.text(), stderr: err.text() + failure, timedOut, truncated: out.truncated || err.truncated };
  }

  async execStream(sandboxId: string, cmd: string[]): Promise<ExecStream> {
    const session = await this.startExec(sandboxId, cmd, { interactive: false });
    const stdout = new PassThrough();
    session.sockets["1"]!.onMessage((data) => stdout.write(data));
    session.sockets["2"]!.onMessage(() => {});
    const finish = () => stdout.end();
    session.sockets["1"]!.ws.once("close", finish);
    session.finished.then(finish, finish);
    return {
      stdout,
      close: () => {
        // End of input tells the command to exit; the sockets go soon after either way.
        session.sockets["0"]!.ws.close();
        setTimeout(() => session.closeAll(), 2_000).unref();
      },
    };
  }

  /**
   * The grading probe, run from the host (lxd-probe.ts): it trusts only the inner dockerd that the
   * container's init started, checked through the host's /proc, and none of the container's files.
   */
  async probe(sandboxId: string): Promise<SandboxProbe> {
    let state: { pid?: number; status?: string };
    try {
      state = await this.api("GET", `/1.0/instances/${encodeURIComponent(sandboxId)}/state`);
    } catch (e) {
      throw this.translateSandboxError(e, sandboxId);
    }
    const info = await this.inspect(sandboxId);
    if (!info?.running || !(typeof state.pid === "number" && state.pid > 0)) {
      throw new ShipshapeError("sandbox_gone", "Your sandbox stopped. Start a new one.", `sandbox ${sandboxId} is not a running sandbox of this server`);
    }
    let engine: LxdEngine;
    try {
      engine = await findLxdEngine(sandboxId, state.pid);
    } catch (e) {
      throw new ShipshapeError(
        "sandbox_failed",
        "The Docker engine in your sandbox could not be found, so nothing was graded. Start a new sandbox, then check again.",
        `sandbox ${sandboxId}: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
    return openLxdProbe(sandboxId, engine);
  }

  /**
   * Starts `POST /instances/<name>/exec` with its WebSockets connected (LXD starts the command only
   * once every one is). `finished` resolves to the exit code when the operation ends.
   */
  private async startExec(
    sandboxId: string,
    cmd: string[],
    options: { interactive: boolean; env?: Record<string, string>; width?: number; height?: number },
  ): Promise<{ sockets: Record<string, ExecSocket>; readonly finished: Promise<number>; kill(): void; closeAll(): void }> {
    for (let attempt = 1; ; attempt++) {
      let started: LxdResponse;
      try {
        started = await this.api<LxdResponse>("POST", `/1.0/instances/${encodeURIComponent(sandboxId)}/exec`, {
          command: cmd,
          environment: { HOME: "/root", LANG: "C.UTF-8", ...options.env },
          interactive: options.interactive,
          "wait-for-websocket": true,
          "record-output": false,
          cwd: "/root",
          ...(options.interactive ? { width: options.width ?? 80, height: options.height ?? 24 } : {}),
        });
      } catch (e) {
        throw await this.translateMemberError(e, sandboxId);
      }
      const opPath = operationPath(started.operation!);
      const fds = ((started.metadata as { metadata?: { fds?: Record<string, string> } }).metadata?.fds ?? {}) as Record<string, string>;
      const sockets: Record<string, ExecSocket> = {};
      try {
        await Promise.all(
          Object.entries(fds).map(async ([fd, secret]) => {
            sockets[fd] = await this.websocket(opPath, secret);
          }),
        );
      } catch (e) {
        for (const s of Object.values(sockets)) s.ws.terminate();
        await this.api("DELETE", opPath).catch(() => {});
        // The command starts only once every socket is connected, so a failed connection ran
        // nothing: trying once more is safe (LXD refused a connection now and then under load).
        if (attempt < 3) {
          this.log.debug("exec websocket refused; trying again", { sandbox: sandboxId, error: String(e) });
          await sleep(100 * attempt);
          continue;
        }
        throw this.translateSandboxError(e, sandboxId);
      }
      const wait = () => this.waitOperation(opPath);
      // Only commands whose exit matters wait for it; a shell's operation lives as long as the shell.
      let waiting: Promise<number> | undefined;
      return {
        get finished() {
          return (waiting ??= wait());
        },
        sockets,
        kill: () => {
          const control = sockets["control"]?.ws;
          if (control?.readyState === WebSocket.OPEN) control.send(JSON.stringify({ command: "signal", signal: 9 }));
        },
        closeAll: () => {
          for (const s of Object.values(sockets)) s.ws.close();
        },
      };
    }
  }

  private async waitOperation(opPath: string): Promise<number> {
    for (;;) {
      const op = await this.api<LxdOperation>("GET", `${opPath}/wait?timeout=100`);
      if (op.status === "Running") continue;
      const ret = op.metadata?.["return"];
      if (typeof ret === "number") return ret;
      if (op.status_code >= 400) throw new LxdError(op.status_code, op.err || op.status);
      return -1;
    }
  }

  // ---- events ----

  onSandboxEvent(listener: (sandboxId: string, event: SandboxEvent) => void): () => void {
    this.eventListeners.add(listener);
    this.ensureEventWatch();
    this.ensureOomWatch();
    this.ensureMemberWatch();
    return () => this.eventListeners.delete(listener);
  }

  /**
   * On a cluster, a member that goes down sends no event for the sandboxes it took with it, so
   * members' health is read from LXD (which marks a member offline when its heartbeats stop) and
   * each of our sandboxes on a member that just went offline is reported stopped, reason
   * "member-lost": its learner is told the machine stopped and gets a new sandbox, which LXD's
   * scheduler places on a member still online. Nothing happens on a single LXD server.
   */
  private memberWatch: NodeJS.Timeout | undefined;
  private readonly memberOnline = new Map<string, boolean>();

  private ensureMemberWatch(): void {
    if (this.memberWatch || this.closed || this.eventListeners.size === 0) return;
    this.memberWatch = setInterval(() => void this.checkMembers(), MEMBER_POLL_MS);
    this.memberWatch.unref();
    void this.checkMembers();
  }

  private async checkMembers(): Promise<void> {
    let members: { server_name: string; status: string }[];
    try {
      const cluster = await this.api<{ enabled?: boolean }>("GET", "/1.0/cluster");
      if (!cluster.enabled) {
        if (this.memberWatch) clearInterval(this.memberWatch);
        return;
      }
      members = await this.api<{ server_name: string; status: string }[]>("GET", "/1.0/cluster/members?recursion=1");
    } catch {
      return; // the member we talk to is unreachable: the engine-health path reports that
    }
    const lost: string[] = [];
    for (const m of members) {
      const online = m.status === "Online";
      if (this.memberOnline.get(m.server_name) === true && !online) lost.push(m.server_name);
      if (this.memberOnline.get(m.server_name) !== online) this.log.info(online ? "cluster member online" : "cluster member offline", { member: m.server_name, status: m.status });
      this.memberOnline.set(m.server_name, online);
    }
    if (lost.length === 0) return;
    let instances: LxdInstance[];
    try {
      instances = await this.api<LxdInstance[]>("GET", "/1.0/instances?recursion=1");
    } catch {
      return;
    }
    for (const i of instances) {
      if (!i.location || !lost.includes(i.location)) continue;
      const info = this.toInfo(i.config ? { ...i, config: null as unknown as Record<string, string> } : i);
      if (!info) continue;
      if (await this.answers(info.id)) {
        this.log.warn("cluster member reported offline, but its sandbox answers; keeping it", { sandbox: info.id, member: i.location });
        continue;
      }
      this.log.warn("sandbox lost with its cluster member", { sandbox: info.id, member: i.location });
      for (const l of this.eventListeners) l(info.id, { kind: "stopped", reason: "member-lost" });
    }
  }

  /** LXD's lifecycle events say when one of our instances stops without us asking (a kill, a crash). */
  private ensureEventWatch(): void {
    if (this.events || this.closed || this.eventListeners.size === 0) return;
    const ws = new WebSocket(`ws+unix://${this.socketPath}:/1.0/events?type=lifecycle`);
    this.events = ws;
    const prefix = `shipshape-${this.profile.namespace}-`;
    ws.on("message", (data: Buffer) => {
      try {
        const ev = JSON.parse(data.toString("utf8")) as { metadata?: { action?: string; source?: string; requestor?: unknown } };
        const action = ev.metadata?.action ?? "";
        const name = decodeURIComponent((ev.metadata?.source ?? "").split("/").pop() ?? "");
        if (!name.startsWith(prefix)) return;
        if (action === "instance-stopped" || action === "instance-shutdown") {
          for (const l of this.eventListeners) l(name, { kind: "stopped", reason: action === "instance-shutdown" ? "shut down" : "stopped" });
        }
      } catch {
        /* a partial or foreign message; ignore */
      }
    });
    const restart = () => {
      this.events = undefined;
      if (!this.closed) setTimeout(() => this.ensureEventWatch(), 1_000).unref();
    };
    ws.on("close", restart);
    ws.on("error", () => {});
  }

  /**
   * LXD reports no OOM kills, and the kernel kills a process inside (the inner dockerd's child),
   * not the container. The container's memory cgroup on this host counts them: a rise is an "oom"
   * event, as Docker's own event is for the classroom tier. Needs the server on the LXD host.
   */
  private oomWatch: NodeJS.Timeout | undefined;
  private readonly oomKills = new Map<string, number>();

  private ensureOomWatch(): void {
    if (this.oomWatch || this.closed || this.eventListeners.size === 0) return;
    this.oomWatch = setInterval(() => void this.checkOomKills(), OOM_POLL_MS);
    this.oomWatch.unref();
  }

  private async checkOomKills(): Promise<void> {
    const prefix = `shipshape-${this.profile.namespace}-`;
    let names: string[];
    try {
      names = (await this.api<string[]>("GET", "/1.0/instances")).map((u) => decodeURIComponent(u.split("/").pop() ?? ""));
    } catch {
      return;
    }
    const live = new Set(names.filter((n) => n.startsWith(prefix)));
    for (const name of this.oomKills.keys()) if (!live.has(name)) this.oomKills.delete(name);
    for (const name of live) {
      const kills = await oomKillCount(name);
      if (kills === undefined) continue;
      const before = this.oomKills.get(name);
      this.oomKills.set(name, kills);
      if (before !== undefined && kills > before) for (const l of this.eventListeners) l(name, { kind: "oom" });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.events?.terminate();
    this.events = undefined;
    if (this.oomWatch) clearInterval(this.oomWatch);
    this.oomWatch = undefined;
    if (this.memberWatch) clearInterval(this.memberWatch);
    this.memberWatch = undefined;
  }

  // ---- errors ----

  private translateCreateError(e: unknown): ShipshapeError {
    if (e instanceof ShipshapeError) return e;
    const msg = e instanceof Error ? e.message : String(e);
    if (/image.*not found|not found.*image|alias/i.test(msg)) {
      return new ShipshapeError(
        "sandbox_failed",
        "The sandbox image is missing on this server. The operator should run set-up again.",
        `LXD image ${this.profile.image}: ${msg}`,
      );
    }
    if (/network|pool/i.test(msg) && /not found/i.test(msg)) {
      return new ShipshapeError("sandbox_failed", "The sandbox network or storage is missing on this server. The operator should run set-up again.", msg);
    }
    return this.translateEngineError(e);
  }

  /**
   * A command that could not start, on a cluster: when the member holding the sandbox is offline,
   * the sandbox is gone for its learner (said in words); while LXD has not yet noticed a silent
   * member (cluster.offline_threshold), it is "not answering", which the page retries.
   */
  private async translateMemberError(e: unknown, sandboxId: string): Promise<ShipshapeError> {
    if (e instanceof LxdError && e.status !== 404 && !/not running/i.test(e.message)) {
      if (await this.lostSandbox(sandboxId).catch(() => undefined)) {
        return new ShipshapeError("sandbox_gone", MEMBER_LOST_MESSAGE, `sandbox ${sandboxId}: its cluster member is offline (${e.message})`);
      }
      if (/cluster member|connection refused|no route to host/i.test(e.message)) {
        return new ShipshapeError(
          "engine_unavailable",
          "The machine your sandbox runs on is not answering. Trying again…",
          `sandbox ${sandboxId}: its cluster member did not answer (${e.message})`,
        );
      }
    }
    return this.translateSandboxError(e, sandboxId);
  }

  private translateSandboxError(e: unknown, sandboxId: string): ShipshapeError {
    if (e instanceof LxdError && (e.status === 404 || /not running/i.test(e.message))) {
      return new ShipshapeError("sandbox_gone", "Your sandbox stopped. Start a new one.", `sandbox ${sandboxId}: ${e.message}`);
    }
    if (e instanceof LxdError && e.status === 400 && /not running/i.test(e.message)) {
      return new ShipshapeError("sandbox_gone", "Your sandbox stopped. Start a new one.", `sandbox ${sandboxId}: ${e.message}`);
    }
    return this.translateEngineError(e);
  }

  private translateEngineError(e: unknown): ShipshapeError {
    if (e instanceof ShipshapeError) return e;
    const code = (e as { code?: string }).code;
    if (code === "ECONNREFUSED" || code === "ENOENT" || code === "EACCES" || code === "ECONNRESET") return engineUnavailable(e, this.socketPath);
    return new ShipshapeError("internal", "Something went wrong on the server.", String(e), { cause: e });
  }
}

function engineUnavailable(e: unknown, socketPath: string): ShipshapeError {
  const code = (e as { code?: string }).code;
  return new ShipshapeError(
    "engine_unavailable",
    "The sandbox service is unavailable right now: LXD is not answering. Try again in a minute.",
    `LXD unreachable at ${socketPath} (${code ?? String(e)})`,
    { cause: e },
  );
}

/** A connected exec WebSocket whose messages wait in a backlog until a consumer takes them. */
class ExecSocket {
  readonly ws: WebSocket;
  private backlog: Buffer[] | undefined = [];
  private consumer: ((data: Buffer) => void) | undefined;
  constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on("message", (data: Buffer) => {
      if (this.consumer) this.consumer(data);
      else this.backlog?.push(data);
    });
  }
  onMessage(consumer: (data: Buffer) => void): void {
    this.consumer = consumer;
    for (const data of this.backlog ?? []) consumer(data);
    this.backlog = undefined;
  }
}

/** OOM kills in a container's memory cgroup on this host (cgroup v1 or v2 layout); undefined when unreadable. */
async function oomKillCount(name: string): Promise<number | undefined> {
  for (const [file, pattern] of [
    [`/sys/fs/cgroup/memory/lxc.payload.${name}/memory.oom_control`, /^oom_kill (\d+)$/m],
    [`/sys/fs/cgroup/lxc.payload.${name}/memory.events`, /^oom_kill (\d+)$/m],
  ] as const) {
    try {
      const m = pattern.exec(await readFile(file, "utf8"));
      if (m) return Number(m[1]);
    } catch {
      /* not this layout, or the container is gone */
    }
  }
  return undefined;
}

/**
 * An operation's path without its query: a cluster member answers `/1.0/operations/<id>?project=default`,
 * and `/wait` or `/websocket` must go before the query, not inside it.
 */
function operationPath(operation: string): string {
  return operation.split("?")[0]!;
}

function envObject(list: string[] | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const item of list ?? []) {
    const eq = item.indexOf("=");
    if (eq > 0) env[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return env;
}

function closed(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 2_000);
    ws.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
