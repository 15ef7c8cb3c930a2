import Docker from "dockerode";
import { randomInt } from "node:crypto";
import { PassThrough, type Duplex } from "node:stream";
import { ShipshapeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { buildProbeContainer, COMMAND_SERVER_SCRIPT, probeToolsUser, READ_FILE_SCRIPT, RELAY_REFUSED, withRelayReady } from "./probe-spec.ts";
import { DockerNetworkGuard, type PinTarget } from "./network-guard.ts";
import {
  buildSandboxContainer,
  LABEL,
  storageVolumeName,
  type DockerProfile,
} from "./sandbox-spec.ts";
import type {
  ExecOptions,
  ExecResult,
  ExecStream,
  NetworkCheck,
  ProbeOptions,
  SandboxEvent,
  SandboxInfo,
  SandboxProbe,
  SandboxRuntime,
  SandboxUsage,
  SandboxSpec,
  ShellOptions,
  ShellStream,
  StartProgress,
} from "./types.ts";

const ENGINE_READY_TIMEOUT_MS = 30_000;
/**
 * For an engine starting behind a learner's prompt (spec.engineLater): they are not kept waiting,
 * and when a class's engines all boot together on a small machine each takes longer than one alone.
 */
const ENGINE_LATER_TIMEOUT_MS = 120_000;
/** Written in a sandbox once its inner engine answered: its `docker` (docker-when-ready) then runs at once. */
export const ENGINE_READY_MARK = "/run/shipshape/engine-ready";
/**
 * Runs inside a starting sandbox ($1 = how many polls it may make): waits for the inner engine's
 * socket with a shell builtin (every 50 ms for 2 s, then every 200 ms), then asks the engine itself;
 * once it answers, leaves ENGINE_READY_MARK and exits 0. (The socket alone says little: dockerd
 * listens on it a while before it serves.) Debian's client directly, not the sandbox's waiting one.
 */
export const WAIT_FOR_ENGINE = `n=0
ready() { mkdir -p /run/shipshape && : >${ENGINE_READY_MARK}; }
while [ "$n" -lt "$1" ]; do
  if [ -S /var/run/docker.sock ] && timeout 5 /usr/bin/docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then ready; exit 0; fi
  if [ "$n" -lt 40 ]; then sleep 0.05; else sleep 0.2; fi
  n=$((n + 1))
done
timeout 5 /usr/bin/docker version --format '{{.Server.Version}}' >/dev/null && ready`;
/** Polls WAIT_FOR_ENGINE may make in `ms`. */
export const enginePolls = (ms: number) => 40 + Math.max(0, Math.floor((ms - 2_000) / 200));

/**
 * A kept probe (ProbeOptions.keep) serves checks for this long before the next check makes a new
 * one; its container ends by itself a little later (the lifetime), even if the server died.
 */
const KEPT_PROBE_REUSE_MS = 50 * 60_000;
const KEPT_PROBE_LIFETIME_S = 3600;
/** A kept probe nobody used for this long is removed (the next check, or terminal, makes another). */
const KEPT_PROBE_IDLE_MS = 15 * 60_000;
const PROBES_WARMED_AT_ONCE = 2;

interface KeptProbe {
  containerId: string;
  enginePid: number;
  madeAt: number;
  server: ProbeCommandServer;
  idle: NodeJS.Timeout | undefined;
}

/** Shell names become socket paths inside the sandbox: keep them boring. */
const terminalNamePattern = /^[a-z0-9-]{1,32}$/;

export interface DockerRuntimeOptions extends DockerProfile {
  docker?: Docker;
  log: Logger;
  /**
   * Pin each sandbox's port to its own addresses and check the egress policy (default true). Off
   * only for runtimes pointed at an engine without the sandbox bridge (tests of an engine outage).
   */
  guardNetwork?: boolean;
}

export class DockerRuntime implements SandboxRuntime {
  readonly name = "docker";
  private readonly docker: Docker;
  private readonly profile: DockerProfile;
  private readonly log: Logger;
  private readonly eventListeners = new Set<(id: string, event: SandboxEvent) => void>();
  private events: NodeJS.ReadableStream | undefined;
  private closed = false;
  private readonly guard: DockerNetworkGuard | undefined;
  /** Why new sandboxes are refused: the last network check's problems (undefined: none known). */
  private networkUnsafe: string[] | undefined;
  private pruneTimer: NodeJS.Timeout | undefined;
  /** Kept grading probes by sandbox id (ProbeOptions.keep). */
  private readonly kept = new Map<string, Promise<KeptProbe>>();
  /** Sandboxes whose kept probe waits to be warmed, and how many are being warmed (warmProbe). */
  private readonly warmLine: string[] = [];
  private warming = 0;
  /** Inner engines still starting in sandboxes handed out before them (spec.engineLater), by sandbox id. */
  private readonly engines = new Map<string, Promise<void>>();

  constructor(options: DockerRuntimeOptions) {
    this.docker = options.docker ?? new Docker();
    this.profile = { image: options.image, network: options.network, namespace: options.namespace, runtime: options.runtime };
    this.log = options.log.child({ component: "runtime" });
    if (options.guardNetwork !== false) {
      this.guard = new DockerNetworkGuard({ docker: this.docker, ...this.profile, log: this.log });
    }
  }

  async ping(): Promise<void> {
    try {
      await this.docker.ping();
    } catch (e) {
      throw engineUnavailable(e);
    }
    try {
      await this.docker.getImage(this.profile.image).inspect();
    } catch (e) {
      throw new ShipshapeError(
        "engine_unavailable",
        "The sandbox image is missing on this server.",
        `image ${this.profile.image} not found; run ./shipshape setup`,
        { cause: e },
      );
    }
  }

  async create(spec: SandboxSpec, onProgress: (p: StartProgress) => void = () => {}): Promise<SandboxInfo> {
    try {
      return await this.createOnce(spec, onProgress);
    } catch (e) {
      // An inner dockerd can give up while it starts (containerd slow to answer on a loaded machine)
      // and take the sandbox with it. That is the server's problem, not the learner's: one more try
      // in a fresh container before anyone is told to try again.
      if (!(e instanceof InnerEngineExited)) throw e;
      this.log.warn("sandbox stopped while its engine started; trying a fresh one", { detail: e.detail });
      onProgress({ step: "Creating your sandbox again", progress: 0.1 });
      return await this.createOnce(spec, onProgress);
    }
  }

  private async createOnce(spec: SandboxSpec, onProgress: (p: StartProgress) => void): Promise<SandboxInfo> {
    if (this.networkUnsafe) {
      throw new ShipshapeError(
        "engine_unavailable",
        "New sandboxes are paused: the server cannot confirm that sandboxes are kept apart from each other and from this machine. The operator has been told; try again in a few minutes.",
        `network check failed: ${this.networkUnsafe.join("; ")}`,
      );
    }
    const createdAt = Date.now();
    const options = buildSandboxContainer(spec, this.profile, createdAt);
    onProgress({ step: "Creating your sandbox", progress: 0.1 });
    let container: Docker.Container;
    try {
      container = await this.docker.createContainer(options);
      onProgress({ step: "Starting the container", progress: 0.3 });
      await container.start();
    } catch (e) {
      await this.destroyByName(options.name!).catch(() => {});
      throw this.translateCreateError(e);
    }
    // Before anyone can type in it: its port accepts only its own MAC and address. (Pinned while
    // its inner engine starts; both must be done before the sandbox is handed out.)
    const pinned = this.pin(container.id).then(
      () => undefined,
      (e: unknown) => e,
    );
    onProgress({ step: "Starting its Docker engine", progress: 0.5 });
    try {
      if (spec.engineLater) {
        // The shell needs the container and its pinned port, not the engine: hand it out now and
        // let the engine finish meanwhile (engineReady). A class arriving at once got its prompts
        // only after fifty engines had booted on two cores; now the prompt comes first.
        const engine = this.waitForInnerEngine(container.id, () => {}, ENGINE_LATER_TIMEOUT_MS);
        engine.catch(() => {}); // observed through engineReady
        this.engines.set(container.id, engine);
        engine.then(
          () => this.engines.delete(container.id),
          () => setTimeout(() => this.engines.delete(container.id), 60_000).unref(),
        );
      } else {
        await this.waitForInnerEngine(container.id, onProgress);
      }
      const pinError = await pinned;
      if (pinError) throw pinError;
    } catch (e) {
      // A sandbox that never became usable is nobody's: remove it now, not at the next reap.
      this.engines.delete(container.id);
      // One that stopped on its own (its port could not be pinned because it was gone, say) is worth another try.
      const stopped = !(e instanceof InnerEngineExited) && !(await this.inspect(container.id).catch(() => null))?.running;
      const err = stopped ? new InnerEngineExited(`${String(e)}; ${await this.whyStopped(container.id)}`) : e;
      await this.destroyByName(options.name!).catch(() => {});
      throw err;
    }
    onProgress({ step: "Ready", progress: 1 });
    const info = await this.inspect(container.id);
    if (!info?.running) {
      await this.destroyByName(options.name!).catch(() => {});
      throw new InnerEngineExited("stopped before it was handed out");
    }
    this.ensureEventWatch();
    return info;
  }

  /** A sandbox made with `engineLater` while its engine starts; any other sandbox's engine answered in `create`. */
  engineReady(sandboxId: string): Promise<void> {
    return this.engines.get(sandboxId) ?? Promise.resolve();
  }

  /**
   * Waits for the inner engine with one exec that polls inside the sandbox: a shell builtin checks
   * for the engine's socket, and only once it exists does `docker version` ask the engine.
   * (An exec per poll cost a container exec plus a docker CLI start each time: during a class's burst
   * of starts that polling alone kept both cores busy.) A fresh DinD answers in about half a second.
   */
  private async waitForInnerEngine(id: string, onProgress: (p: StartProgress) => void, timeoutMs = ENGINE_READY_TIMEOUT_MS): Promise<void> {
    const started = Date.now();
    const deadline = started + timeoutMs;
    const progress = setInterval(() => {
      const elapsed = Date.now() - started;
      onProgress({ step: "Starting its Docker engine", progress: Math.min(0.95, 0.5 + elapsed / timeoutMs) });
    }, 250);
    let last = "";
    try {
      while (Date.now() < deadline) {
        const r = await this.exec(id, ["sh", "-c", WAIT_FOR_ENGINE, "sh", String(enginePolls(deadline - Date.now()))], {
          timeoutMs: deadline - Date.now() + 10_000,
        }).catch(
          (e: unknown) => ({ exitCode: -1, stdout: "", stderr: String(e), timedOut: false, truncated: false }),
        );
        if (r.exitCode === 0) return;
        last = r.stderr.trim() || last;
        const info = await this.inspect(id);
        if (!info?.running) throw new InnerEngineExited(`${last}; ${await this.whyStopped(id)}`);
        await sleep(100);
      }
    } finally {
      clearInterval(progress);
    }
    throw new ShipshapeError(
      "sandbox_failed",
      "Your sandbox's Docker engine did not start in time. Try again in a minute.",
      `inner dockerd not answering after ${timeoutMs} ms: ${last}`,
    );
  }

  async shell(sandboxId: string, options: ShellOptions): Promise<ShellStream> {
    if (!terminalNamePattern.test(options.terminal)) {
      throw new ShipshapeError("bad_request", "A terminal name may only use a-z, 0-9 and '-'.");
    }
    const container = this.docker.getContainer(sandboxId);
    // dtach keeps the shell alive when this attachment ends (reload, server restart);
    // the next attachment to the same socket finds the same shell. -E: no detach key,
    // -z: no suspend key, -r winch: redraw by SIGWINCH, never by typed input (Ctrl-L swallowed the
    // first line typed into a brand-new shell). The hub adds a real size change, which readline
    // answers by reprinting its prompt (terminal-hub.ts, nudgeRedraw).
    const socket = `/run/shipshape/term-${options.terminal}.sock`;
    try {
      const exec = await container.exec({
        Cmd: ["sh", "-c", 'mkdir -p /run/shipshape && exec dtach -A "$0" -E -z -r winch bash -l', socket],
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
        Tty: true,
        Env: ["TERM=xterm-256color", `COLUMNS=${options.cols}`, `LINES=${options.rows}`],
        WorkingDir: "/root",
      });
      const stream = (await exec.start({ hijack: true, stdin: true, Tty: true })) as Duplex;
      await exec.resize({ h: options.rows, w: options.cols }).catch(() => {});
      return {
        stream,
        resize: async (cols, rows) => {
          await exec.resize({ h: rows, w: cols });
        },
        close: () => stream.destroy(),
      };
    } catch (e) {
      throw this.translateSandboxError(e, sandboxId);
    }
  }

  async exec(sandboxId: string, cmd: string[], options: ExecOptions = {}): Promise<ExecResult> {
    return this.execIn(sandboxId, cmd, options).catch((e: unknown) => {
      throw this.translateSandboxError(e, sandboxId);
    });
  }

  /** A command in any container of ours (a sandbox, a probe), as `user` when given; engine errors are left to the caller. */
  private async execIn(containerId: string, cmd: string[], options: ExecOptions = {}, user?: string): Promise<ExecResult> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const maxBytes = options.maxOutputBytes ?? 1024 * 1024;
    const exec = await this.docker.getContainer(containerId).exec({
      Cmd: cmd,
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
      ...(options.env ? { Env: options.env } : {}),
      ...(user ? { User: user } : {}),
    });
    const stream = (await exec.start({ hijack: true, stdin: false })) as Duplex;
    const out = new Capped(maxBytes);
    const err = new Capped(maxBytes);
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    stdout.on("data", (c: Buffer) => out.push(c));
    stderr.on("data", (c: Buffer) => err.push(c));
    this.docker.modem.demuxStream(stream, stdout, stderr);
    const timedOut = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        stream.destroy();
        resolve(true);
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve(false);
      };
      stream.once("end", done);
      stream.once("close", done);
      stream.once("error", done);
    });
    let exitCode = -1;
    if (!timedOut) {
      // The stream can end a moment before the engine records the exit code.
      for (let i = 0; i < 20; i++) {
        const state = await exec.inspect().catch(() => null);
        if (state && !state.Running) {
          exitCode = state.ExitCode ?? -1;
          break;
        }
        await sleep(5 * (i + 1));
      }
    }
    return { exitCode, stdout: out.text(), stderr: err.text(), timedOut, truncated: out.truncated || err.truncated };
  }

  /** The grading probe: see buildProbeContainer for its shape and why; `keep`: see ProbeOptions. */
  async probe(sandboxId: string, options: ProbeOptions = {}): Promise<SandboxProbe> {
    const { enginePid, sessionId } = await this.engineOf(sandboxId);
    if (options.keep) {
      const kept = await this.keptProbe(sandboxId, sessionId, enginePid);
      if (kept.idle) clearTimeout(kept.idle);
      return this.probeHandle(sandboxId, kept.containerId, enginePid, (cmd, o) => kept.server.run(cmd, o), async () => this.releaseKept(sandboxId, kept));
    }
    const toolsUser = probeToolsUser(randomInt);
    const probeId = await this.startProbeContainer(sandboxId, sessionId, enginePid);
    return this.probeHandle(
      sandboxId,
      probeId,
      enginePid,
      (cmd, o) =>
        this.execIn(probeId, withRelayReady(cmd), o, toolsUser).catch((e: unknown) => {
          throw this.translateSandboxError(e, sandboxId);
        }),
      async () => {
        await this.docker.getContainer(probeId).remove({ force: true, v: true }).catch(() => {});
      },
    );
  }

  /**
   * Starts the kept probe of a sandbox a learner is using, so their first check finds it
   * (ProbeOptions.keep). Two at a time, in order: a class's terminals attach together, and fifty
   * probe starts at once would slow the class's own sandbox starts.
   */
  warmProbe(sandboxId: string): void {
    if (this.closed || this.kept.has(sandboxId) || this.warmLine.includes(sandboxId)) return;
    this.warmLine.push(sandboxId);
    this.warmNext();
  }

  private warmNext(): void {
    while (this.warming < PROBES_WARMED_AT_ONCE && this.warmLine.length > 0) {
      const sandboxId = this.warmLine.shift()!;
      if (this.closed || this.kept.has(sandboxId)) continue;
      this.warming++;
      void this.engineOf(sandboxId)
        .then(({ enginePid, sessionId }) => this.keptProbe(sandboxId, sessionId, enginePid))
        .then(
          (kept) => this.releaseKept(sandboxId, kept),
          (e: unknown) => this.log.debug("could not warm a probe", { sandboxId, error: String(e) }),
        )
        .finally(() => {
          this.warming--;
          this.warmNext();
        });
    }
  }

  private async startProbeContainer(sandboxId: string, sessionId: string, enginePid: number, lifetimeSeconds?: number): Promise<string> {
    let probe: Docker.Container;
    try {
      probe = await this.docker.createContainer(
        buildProbeContainer({ image: this.profile.image, namespace: this.profile.namespace, sandboxId, sessionId, enginePid, lifetimeSeconds }),
      );
      await probe.start();
    } catch (e) {
      throw this.translateSandboxError(e, sandboxId);
    }
    return probe.id;
  }

  private probeHandle(
    sandboxId: string,
    probeId: string,
    enginePid: number,
    tools: (cmd: string[], options: ExecOptions) => Promise<ExecResult>,
    close: () => Promise<void>,
  ): SandboxProbe {
    const run = (cmd: string[], options: ExecOptions) =>
      this.execIn(probeId, withRelayReady(cmd), options).catch((e: unknown) => {
        throw this.translateSandboxError(e, sandboxId);
      });
    return {
      exec: async (cmd, options = {}) => {
        const r = await tools(cmd, options);
        const refused = r.stderr.split("\n").find((l) => l.includes(RELAY_REFUSED));
        if (refused) {
          throw new ShipshapeError(
            "sandbox_failed",
            "The Docker engine socket in your sandbox was replaced, so your engine could not be verified and nothing was graded. Remove what you put at /var/run/docker.sock (or start a new sandbox), then check again.",
            `sandbox ${sandboxId}: ${refused.trim()}`,
          );
        }
        return r;
      },
      // As the probe's root, the one user that may look into the sandbox's root through its engine's
      // /proc entry (the tools user of `exec` may not).
      authorScript: (cmd, options = {}) => {
        const root = `/proc/${enginePid}/root`;
        return run(cmd, { ...options, env: [`SANDBOX_ROOT=${root}`, `HOME=${root}/root`, ...(options.env ?? [])] });
      },
      readFile: async (path, maxBytes) => {
        const r = await run(["perl", "-e", READ_FILE_SCRIPT, String(enginePid), path, String(maxBytes)], { maxOutputBytes: maxBytes, timeoutMs: 15_000 });
        if (r.exitCode === 0) return r.stdout;
        if (r.exitCode === 1) return undefined;
        throw new Error(`reading ${path} in sandbox ${sandboxId}: exit ${r.exitCode}${r.timedOut ? " (timed out)" : ""} ${r.stderr.trim()}`);
      },
      close,
    };
  }

  /** The sandbox's kept probe: the one there is while it serves, else a new one (made once for concurrent callers). */
  private async keptProbe(sandboxId: string, sessionId: string, enginePid: number): Promise<KeptProbe> {
    const existing = this.kept.get(sandboxId);
    if (existing) {
      const k = await existing.catch(() => undefined);
      if (k && k.enginePid === enginePid && k.server.alive && Date.now() - k.madeAt < KEPT_PROBE_REUSE_MS) return k;
      if (this.kept.get(sandboxId) !== existing) return this.keptProbe(sandboxId, sessionId, enginePid);
      this.kept.delete(sandboxId);
      if (k) void this.removeKept(k);
    }
    if (this.closed) throw new ShipshapeError("engine_unavailable", "The server is stopping; check again in a moment.");
    const making = (async (): Promise<KeptProbe> => {
      const containerId = await this.startProbeContainer(sandboxId, sessionId, enginePid, KEPT_PROBE_LIFETIME_S);
      try {
        const toolsUser = probeToolsUser(randomInt);
        const exec = await this.docker.getContainer(containerId).exec({
          Cmd: withRelayReady(["perl", "-e", COMMAND_SERVER_SCRIPT]),
          AttachStdin: true,
          AttachStdout: true,
          AttachStderr: true,
          Tty: false,
          User: toolsUser,
        });
        const stream = (await exec.start({ hijack: true, stdin: true })) as Duplex;
        const stdout = new PassThrough();
        const stderr = new PassThrough();
        stderr.resume();
        this.docker.modem.demuxStream(stream, stdout, stderr);
        return { containerId, enginePid, madeAt: Date.now(), server: new ProbeCommandServer(stream, stdout), idle: undefined };
      } catch (e) {
        await this.docker.getContainer(containerId).remove({ force: true, v: true }).catch(() => {});
        throw this.translateSandboxError(e, sandboxId);
      }
    })();
    this.kept.set(sandboxId, making);
    making.catch(() => {
      if (this.kept.get(sandboxId) === making) this.kept.delete(sandboxId);
    });
    return making;
  }

  /** A check is done with the kept probe: it stays for the next one, until idle too long. */
  private releaseKept(sandboxId: string, kept: KeptProbe): void {
    if (kept.idle) clearTimeout(kept.idle);
    kept.idle = setTimeout(() => {
      void this.kept.get(sandboxId)?.then((k) => {
        if (k !== kept) return;
        this.kept.delete(sandboxId);
        void this.removeKept(kept);
      });
    }, KEPT_PROBE_IDLE_MS);
    kept.idle.unref();
  }

  private async removeKept(kept: KeptProbe): Promise<void> {
    if (kept.idle) clearTimeout(kept.idle);
    kept.server.close();
    await this.docker.getContainer(kept.containerId).remove({ force: true, v: true }).catch(() => {});
  }

  /** Removes a sandbox's kept probe now (the sandbox goes, or the server stops). */
  private async dropKept(sandboxId: string): Promise<void> {
    const kept = this.kept.get(sandboxId);
    if (!kept) return;
    this.kept.delete(sandboxId);
    const k = await kept.catch(() => undefined);
    if (k) await this.removeKept(k);
  }

  /** The host pid of a running sandbox's first process, its engine, as the host's engine reports it. */
  private async engineOf(sandboxId: string): Promise<{ enginePid: number; sessionId: string }> {
    let c: Docker.ContainerInspectInfo;
    try {
      c = await this.docker.getContainer(sandboxId).inspect();
    } catch (e) {
      throw this.translateSandboxError(e, sandboxId);
    }
    const labels = c.Config.Labels ?? {};
    if (labels[LABEL.role] !== "sandbox" || labels[LABEL.namespace] !== this.profile.namespace || !c.State.Running || !(c.State.Pid > 0)) {
      throw new ShipshapeError("sandbox_gone", "Your sandbox stopped. Start a new one.", `sandbox ${sandboxId} is not a running sandbox of this server`);
    }
    return { enginePid: c.State.Pid, sessionId: labels[LABEL.session] ?? "" };
  }

  async execStream(sandboxId: string, cmd: string[]): Promise<ExecStream> {
    const container = this.docker.getContainer(sandboxId);
    let stream: Duplex;
    try {
      const exec = await container.exec({ Cmd: cmd, AttachStdin: true, AttachStdout: true, AttachStderr: true, Tty: false });
      stream = (await exec.start({ hijack: true, stdin: true })) as Duplex;
    } catch (e) {
      throw this.translateSandboxError(e, sandboxId);
    }
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    stderr.resume();
    this.docker.modem.demuxStream(stream, stdout, stderr);
    const finish = () => stdout.end();
    stream.once("end", finish);
    stream.once("close", finish);
    stream.once("error", finish);
    return {
      stdout,
      close: () => {
        // End of input tells the command to exit; the connection goes soon after either way.
        stream.end();
        setTimeout(() => stream.destroy(), 2_000).unref();
      },
    };
  }

  async inspect(sandboxId: string): Promise<SandboxInfo | null> {
    try {
      const c = await this.docker.getContainer(sandboxId).inspect();
      const labels = c.Config.Labels ?? {};
      if (labels[LABEL.role] !== "sandbox" || labels[LABEL.namespace] !== this.profile.namespace) return null;
      const net = c.NetworkSettings.Networks?.[this.profile.network];
      return {
        id: c.Id,
        name: c.Name.replace(/^\//, ""),
        sessionId: labels[LABEL.session] ?? "",
        ownerId: labels[LABEL.owner] ?? "",
        workshopId: labels[LABEL.workshop] || undefined,
        createdAt: Date.parse(labels[LABEL.createdAt] ?? "") || Date.parse(c.Created),
        expiresAt: Date.parse(labels[LABEL.expiresAt] ?? "") || 0,
        running: c.State.Running,
        address: c.State.Running && net?.IPAddress ? net.IPAddress : undefined,
        exitReason: c.State.Running ? undefined : c.State.OOMKilled ? "oom" : `exit code ${c.State.ExitCode}`,
      };
    } catch (e) {
      if (statusOf(e) === 404) return null;
      throw this.translateEngineError(e);
    }
  }

  async destroy(sandboxId: string): Promise<void> {
    await this.dropKept(sandboxId);
    const info = await this.inspect(sandboxId);
    const name = info?.name;
    // A probe kept by an earlier server process (restarted or killed) is not in this one's memory.
    if (info) await this.removeProbes((session) => session === info.sessionId);
    try {
      await this.docker.getContainer(sandboxId).remove({ force: true, v: true });
    } catch (e) {
      if (statusOf(e) !== 404 && statusOf(e) !== 409) throw this.translateEngineError(e);
    }
    if (name) await this.removeVolume(storageVolumeName(name));
    this.schedulePrune();
  }

  /** Pins one new sandbox's bridge port; throws (and the sandbox is not handed out) when it cannot. */
  private async pin(id: string): Promise<void> {
    if (!this.guard) return;
    const target = (await this.pinTargets([id]))[0];
    const failure = (reason: string) =>
      new ShipshapeError("sandbox_failed", "Your sandbox could not be connected safely. Try again in a minute.", `pinning ${id.slice(0, 12)}: ${reason}`);
    if (!target) throw failure("no running container with an address on the sandbox network");
    try {
      await this.guard.pin(target);
    } catch (e) {
      throw failure(e instanceof Error ? e.message : String(e));
    }
  }

  /**
   * A sandbox's port rules outlive it harmlessly (its port is gone); they are removed by the next
   * helper run, at the latest 10 s later (one run for every sandbox that went meanwhile).
   */
  private schedulePrune(): void {
    if (!this.guard || this.pruneTimer || this.closed) return;
    this.pruneTimer = setTimeout(() => {
      this.pruneTimer = undefined;
      this.guard?.sync([], { verifyEgress: false }).catch((e: unknown) => this.log.warn("could not remove old port pins", { error: String(e) }));
    }, 10_000);
    this.pruneTimer.unref();
  }

  /** The engine's view of running sandboxes (all of this namespace, or `ids`): pid, MAC, IPv4. */
  private async pinTargets(ids?: string[]): Promise<PinTarget[]> {
    const list =
      ids ??
      (
        await this.docker.listContainers({
          filters: { label: [`${LABEL.role}=sandbox`, `${LABEL.namespace}=${this.profile.namespace}`], status: ["running"] },
        })
      ).map((c) => c.Id);
    const targets: PinTarget[] = [];
    for (const id of list) {
      const c = await this.docker
        .getContainer(id)
        .inspect()
        .catch(() => undefined);
      const net = c?.NetworkSettings.Networks?.[this.profile.network];
      if (!c?.State.Running || !net?.IPAddress || !net.MacAddress) continue;
      targets.push({ id: c.Id, pid: c.State.Pid, mac: net.MacAddress.toLowerCase(), ip: net.IPAddress });
    }
    return targets;
  }

  /**
   * Verifies the egress policy and every running sandbox's port pin. With `repair`, re-applies a
   * missing or incomplete policy (the set-up command) and pins ports that lost their rules (a
   * firewall flush; sandboxes that survived a server restart from before pins). A sandbox whose
   * port cannot be pinned is removed: a learner on an unpinned port could take another's address.
   */
  async checkNetwork(options: { repair: boolean }): Promise<NetworkCheck> {
    const at = Date.now();
    if (!this.guard) return { ok: true, problems: [], repaired: [], at };
    const problems: string[] = [];
    const repaired: string[] = [];
    try {
      const targets = await this.pinTargets();
      // Pinning is itself the repair of a pin, so it happens even without `repair`: an unpinned
      // sandbox is never the safer state.
      const result = await this.guard.sync(targets, { verifyEgress: true });
      if (result.newlyPinned.length > 0) {
        repaired.push(`pinned the network ports of ${result.newlyPinned.length} running sandbox(es) that had no pin`);
        this.log.warn("pinned sandbox ports that had no pin", { sandboxIds: result.newlyPinned });
      }
      for (const [id, reason] of result.failed) {
        // Once more, alone (it may have stopped meanwhile, or been starting); then it goes.
        const target = (await this.pinTargets([id]))[0];
        if (!target) continue;
        const again = await this.guard.pin(target).then(
          () => undefined,
          (e: unknown) => (e instanceof Error ? e.message : String(e)),
        );
        if (again === undefined) continue;
        this.log.error("removing a sandbox whose network port cannot be pinned", { sandboxId: id, reason, again });
        await this.destroy(id).catch(() => {});
      }
      let egress = result.egressProblems ?? [];
      if (egress.length > 0 && options.repair) {
        this.log.warn("egress policy missing or incomplete; re-applying it", { problems: egress });
        try {
          await this.guard.applyEgress();
          egress = (await this.guard.sync([], { verifyEgress: true })).egressProblems ?? [];
          if (egress.length === 0) repaired.push("re-applied the egress policy, which was missing or incomplete");
        } catch (e) {
          this.log.error("could not re-apply the egress policy", { error: String(e) });
          problems.push("the egress policy is missing and could not be re-applied (the server log says why)");
        }
      }
      problems.push(...egress.map((p) => `egress policy: ${p}`));
    } catch (e) {
      if (this.closed) return { ok: this.networkUnsafe === undefined, problems: this.networkUnsafe ?? [], repaired, at };
      if (this.translateEngineError(e).code === "engine_unavailable") {
        const known = this.networkUnsafe ?? [];
        return { ok: known.length === 0, problems: known, repaired, at, engineUnreachable: true };
      }
      this.log.error("could not check the sandbox network", { error: String(e) });
      problems.push(
        statusOf(e) === 404
          ? `the sandbox network ${this.profile.network} does not exist; run ./shipshape setup`
          : "the sandbox network could not be checked (the server log says why)",
      );
    }
    this.networkUnsafe = problems.length > 0 ? problems : undefined;
    return { ok: problems.length === 0, problems, repaired, at };
  }

  /** Removes this namespace's grading probe containers whose session label `matches`. */
  private async removeProbes(matches: (sessionId: string) => boolean): Promise<void> {
    const probes = await this.docker
      .listContainers({ all: true, filters: { label: [`${LABEL.role}=probe`, `${LABEL.namespace}=${this.profile.namespace}`] } })
      .catch(() => [] as Docker.ContainerInfo[]);
    for (const p of probes) {
      if (!matches(p.Labels[LABEL.session] ?? "")) continue;
      await this.docker
        .getContainer(p.Id)
        .remove({ force: true })
        .catch(() => {});
    }
  }

  /** For the log when a starting sandbox stops: its exit state and the end of its inner dockerd's log. */
  private async whyStopped(id: string): Promise<string> {
    try {
      const container = this.docker.getContainer(id);
      const { State } = await container.inspect();
      const tar = await streamToBuffer(await container.getArchive({ path: "/var/log/dockerd.log" }));
      const tail = fileFromTar(tar).toString("utf8").trimEnd().split("\n").slice(-5).join(" | ");
      return `exit ${State.ExitCode}${State.OOMKilled ? " (OOM-killed)" : ""}${State.Error ? ` ${State.Error}` : ""}; dockerd.log: ${tail}`;
    } catch (e) {
      return `no more detail (${String(e)})`;
    }
  }

  private async destroyByName(name: string): Promise<void> {
    await this.docker.getContainer(name).remove({ force: true, v: true }).catch(() => {});
    await this.removeVolume(storageVolumeName(name));
  }

  private async removeVolume(name: string): Promise<void> {
    // A volume is briefly "in use" right after its container is removed.
    for (let i = 0; i < 5; i++) {
      try {
        await this.docker.getVolume(name).remove();
        return;
      } catch (e) {
        if (statusOf(e) === 404) return;
        await sleep(100 * (i + 1));
      }
    }
    this.log.warn("could not remove sandbox storage volume", { volume: name });
  }

  async list(): Promise<SandboxInfo[]> {
    let containers: Docker.ContainerInfo[];
    try {
      containers = await this.docker.listContainers({
        all: true,
        filters: { label: [`${LABEL.role}=sandbox`, `${LABEL.namespace}=${this.profile.namespace}`] },
      });
    } catch (e) {
      throw this.translateEngineError(e);
    }
    const infos = await Promise.all(containers.map((c) => this.inspect(c.Id)));
    return infos.filter((i): i is SandboxInfo => i !== null);
  }

  async removeOrphanedStorage(liveSandboxIds: ReadonlySet<string>): Promise<number> {
    const liveNames = new Set<string>();
    const liveSessions = new Set<string>();
    for (const id of liveSandboxIds) {
      const info = await this.inspect(id);
      if (info) liveNames.add(storageVolumeName(info.name));
      if (info) liveSessions.add(info.sessionId);
    }
    // Grading probes whose sandbox is gone (their server died before it could remove them).
    await this.removeProbes((session) => !liveSessions.has(session));
    const { Volumes } = await this.docker.listVolumes({
      filters: { label: [`${LABEL.role}=sandbox`, `${LABEL.namespace}=${this.profile.namespace}`] },
    });
    let removed = 0;
    for (const v of Volumes ?? []) {
      if (liveNames.has(v.Name)) continue;
      const containers = await this.docker.listContainers({ all: true, filters: { volume: [v.Name] } });
      if (containers.length > 0) continue;
      await this.removeVolume(v.Name);
      removed++;
    }
    return removed;
  }

  async usage(sandboxId: string, options: { disk?: boolean } = {}): Promise<SandboxUsage> {
    let stats: Docker.ContainerStats;
    try {
      stats = await this.docker.getContainer(sandboxId).stats({ stream: false, "one-shot": true });
    } catch (e) {
      throw this.translateSandboxError(e, sandboxId);
    }
    // Page cache is reclaimable; the kernel's OOM decision looks at the rest.
    const cache = (stats.memory_stats.stats as { total_inactive_file?: number } | undefined)?.total_inactive_file ?? 0;
    let diskBytes: number | undefined;
    if (options.disk) {
      // The inner engine's volume, plus what the learner wrote to the container's own filesystem
      // (its writable layer on the host's disk): both fill the host, neither has a hard quota.
      const [r, info] = await Promise.all([
        this.exec(sandboxId, ["nice", "-n", "19", "du", "-sxb", "/var/lib/docker"], { timeoutMs: 60_000 }),
        this.docker
          .getContainer(sandboxId)
          .inspect({ size: true } as Docker.ContainerInspectOptions)
          .catch(() => undefined),
      ]);
      const n = Number.parseInt(r.stdout, 10);
      const rw = (info as { SizeRw?: number } | undefined)?.SizeRw ?? 0;
      diskBytes = Number.isFinite(n) ? n + rw : undefined;
    }
    return { memoryBytes: Math.max(0, (stats.memory_stats.usage ?? 0) - cache), pids: stats.pids_stats?.current ?? 0, diskBytes };
  }

  onSandboxEvent(listener: (sandboxId: string, event: SandboxEvent) => void): () => void {
    this.eventListeners.add(listener);
    this.ensureEventWatch();
    return () => this.eventListeners.delete(listener);
  }

  /** One engine event stream tells us when a sandbox dies under a learner (OOM, docker kill). */
  private ensureEventWatch(): void {
    if (this.events || this.closed || this.eventListeners.size === 0) return;
    const filters = { type: ["container"], event: ["die", "oom"], label: [`${LABEL.namespace}=${this.profile.namespace}`] };
    this.docker.getEvents({ filters: JSON.stringify(filters) } as Docker.GetEventsOptions).then(
      (stream) => {
        if (this.closed) return (stream as unknown as Duplex).destroy();
        this.events = stream;
        let buffered = "";
        stream.on("data", (chunk: Buffer) => {
          buffered += chunk.toString("utf8");
          let nl: number;
          while ((nl = buffered.indexOf("\n")) >= 0) {
            const line = buffered.slice(0, nl);
            buffered = buffered.slice(nl + 1);
            try {
              const ev = JSON.parse(line) as { id?: string; Action?: string; Actor?: { Attributes?: Record<string, string> } };
              const attrs = ev.Actor?.Attributes ?? {};
              if (ev.id && attrs[LABEL.role] === "sandbox") {
                const event: SandboxEvent =
                  ev.Action === "oom"
                    ? { kind: "oom" }
                    : { kind: "stopped", reason: attrs.exitCode === "137" ? "killed" : `exit code ${attrs.exitCode ?? "?"}` };
                for (const l of this.eventListeners) l(ev.id, event);
              }
            } catch {
              /* a partial or foreign line; ignore */
            }
          }
        });
        const restart = () => {
          this.events = undefined;
          if (!this.closed) setTimeout(() => this.ensureEventWatch(), 1_000).unref();
        };
        stream.on("end", restart);
        stream.on("error", restart);
      },
      () => {
        if (!this.closed) setTimeout(() => this.ensureEventWatch(), 2_000).unref();
      },
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    // Kept probes are this process's: a restarted server would not know them.
    await Promise.all([...this.kept.keys()].map((id) => this.dropKept(id)));
    if (this.pruneTimer) clearTimeout(this.pruneTimer);
    await this.guard?.close();
    (this.events as unknown as Duplex | undefined)?.destroy();
    this.events = undefined;
  }

  private translateCreateError(e: unknown): ShipshapeError {
    const msg = e instanceof Error ? e.message : String(e);
    if (statusOf(e) === 404 && /image/i.test(msg)) {
      return new ShipshapeError(
        "sandbox_failed",
        "The sandbox image is missing on this server. The operator should run set-up again.",
        `image ${this.profile.image} not found: ${msg}`,
      );
    }
    if (/network .* not found/i.test(msg)) {
      return new ShipshapeError(
        "sandbox_failed",
        "The sandbox network is missing on this server. The operator should run set-up again.",
        msg,
      );
    }
    return this.translateEngineError(e);
  }

  private translateSandboxError(e: unknown, sandboxId: string): ShipshapeError {
    const status = statusOf(e);
    if (status === 404 || status === 409) {
      return new ShipshapeError("sandbox_gone", "Your sandbox stopped. Start a new one.", `sandbox ${sandboxId}: ${String(e)}`);
    }
    return this.translateEngineError(e);
  }

  private translateEngineError(e: unknown): ShipshapeError {
    if (e instanceof ShipshapeError) return e;
    const code = (e as { code?: string }).code;
    if (code === "ECONNREFUSED" || code === "ENOENT" || code === "EACCES" || code === "ECONNRESET") return engineUnavailable(e);
    return new ShipshapeError("internal", "Something went wrong on the server.", String(e), { cause: e });
  }
}

function engineUnavailable(e: unknown): ShipshapeError {
  const code = (e as { code?: string }).code;
  return new ShipshapeError(
    "engine_unavailable",
    "The sandbox service is unavailable right now: the Docker engine is not answering. Try again in a minute.",
    `docker engine unreachable (${code ?? String(e)})`,
    { cause: e },
  );
}

function statusOf(e: unknown): number | undefined {
  return (e as { statusCode?: number }).statusCode;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Collects output up to a cap, so a learner's huge output cannot grow server memory. */
export class Capped {
  private chunks: Buffer[] = [];
  private size = 0;
  truncated = false;
  private readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
  push(c: Buffer): void {
    if (this.size >= this.max) {
      this.truncated = true;
      return;
    }
    const take = c.subarray(0, this.max - this.size);
    if (take.length < c.length) this.truncated = true;
    this.chunks.push(take);
    this.size += take.length;
  }
  text(): string {
    return Buffer.concat(this.chunks).toString("utf8");
  }
}

/** A sandbox whose container stopped while its inner engine was starting (create tries once more). */
class InnerEngineExited extends ShipshapeError {
  constructor(detail: string) {
    super("sandbox_failed", "Your sandbox stopped while it was starting. Try again.", detail);
  }
}

function streamToBuffer(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => resolve(Buffer.concat(chunks)));
    stream.on("error", reject);
  });
}

/** The content of the first file in a tar archive (ustar: a 512-byte header, size in octal at 124). */
function fileFromTar(tar: Buffer): Buffer {
  const size = parseInt(tar.subarray(124, 136).toString("ascii").replace(/\0.*$/, "").trim(), 8) || 0;
  return tar.subarray(512, 512 + size);
}

/**
 * The client side of a kept probe's command server (probe-command-server.pl), over one exec's
 * stdin and stdout: one request at a time, each bounded by its own timeout (plus a margin for the
 * answer); a server that stops answering is dropped, and the next check makes a new probe.
 */
class ProbeCommandServer {
  alive = true;
  private nextId = 0;
  private buffered = "";
  private queue: Promise<unknown> = Promise.resolve();
  private waiting: { id: string; resolve: (r: ExecResult) => void; reject: (e: Error) => void } | undefined;
  private readonly stream: Duplex;

  constructor(stream: Duplex, stdout: NodeJS.ReadableStream) {
    this.stream = stream;
    stdout.on("data", (chunk: Buffer) => {
      this.buffered += chunk.toString("latin1");
      let nl: number;
      while ((nl = this.buffered.indexOf("\n")) >= 0) {
        const line = this.buffered.slice(0, nl);
        this.buffered = this.buffered.slice(nl + 1);
        this.answer(line);
      }
    });
    const ended = () => this.fail(new Error("the probe's command server ended"));
    stream.once("end", ended);
    stream.once("close", ended);
    stream.once("error", ended);
  }

  run(cmd: string[], options: ExecOptions): Promise<ExecResult> {
    const next = this.queue.then(() => this.send(cmd, options.timeoutMs ?? 30_000, options.maxOutputBytes ?? 1024 * 1024));
    this.queue = next.catch(() => {});
    return next;
  }

  close(): void {
    this.fail(new Error("the probe was removed"));
    this.stream.destroy();
  }

  private send(cmd: string[], timeoutMs: number, maxBytes: number): Promise<ExecResult> {
    if (!this.alive) return Promise.reject(new Error("the probe's command server ended"));
    if (cmd.length === 0) return Promise.reject(new Error("no command"));
    const id = String(++this.nextId);
    const field = (v: string) => (v === "" ? "-" : Buffer.from(v, "utf8").toString("base64"));
    return new Promise<ExecResult>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new Error(`the probe's command server did not answer within ${timeoutMs} ms`)), timeoutMs + 15_000);
      this.waiting = {
        id,
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.stream.write([id, String(timeoutMs), String(maxBytes), ...cmd].map(field).join(" ") + "\n");
    });
  }

  private answer(line: string): void {
    const f = line.split(" ");
    const text = (v: string | undefined) => (v === undefined || v === "-" ? "" : Buffer.from(v, "base64").toString("utf8"));
    const waiting = this.waiting;
    if (!waiting || f.length !== 6 || text(f[0]) !== waiting.id) return this.fail(new Error("the probe's command server answered out of turn"));
    this.waiting = undefined;
    waiting.resolve({ exitCode: Number(f[1]), timedOut: f[2] === "1", truncated: f[3] === "1", stdout: text(f[4]), stderr: text(f[5]) });
  }

  private fail(e: Error): void {
    this.alive = false;
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.reject(e);
  }
}
