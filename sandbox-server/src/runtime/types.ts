import type { Duplex, Readable } from "node:stream";

/**
 * The contract every sandbox engine implements (Docker now, Kubernetes later).
 * Only files in this folder talk to an engine; everything above speaks this interface.
 */
export interface SandboxRuntime {
  readonly name: string;
  /** Resolves when the engine answers and can start sandboxes; rejects with ShipshapeError("engine_unavailable") saying why. */
  ping(): Promise<void>;
  /**
   * Creates a sandbox and resolves once its inner Docker engine answers; with `spec.engineLater`
   * (runtimes with `engineReady` only), as soon as a shell can start in it, the engine still starting.
   */
  create(spec: SandboxSpec, onProgress?: (p: StartProgress) => void): Promise<SandboxInfo>;
  /**
   * Resolves when the inner engine of a sandbox made with `engineLater` answers (at once for any
   * other sandbox); rejects with ShipshapeError("sandbox_failed") when it never does. Optional: a
   * runtime without it ignores `engineLater` and waits in `create`.
   */
  engineReady?(sandboxId: string): Promise<void>;
  /** An interactive shell with a TTY; `terminal` names a shell that survives detaching. */
  shell(sandboxId: string, options: ShellOptions): Promise<ShellStream>;
  /** A command without a TTY, for grading and file writes; output is capped. */
  exec(sandboxId: string, cmd: string[], options?: ExecOptions): Promise<ExecResult>;
  /**
   * A trusted look into a sandbox for grading: a short-lived helper with its own fresh, read-only
   * filesystem and tools, sharing the sandbox's network. Nothing the learner changed in their
   * sandbox (a replaced `docker` binary, a preload library, a fake engine socket) is used by it,
   * and nothing in the sandbox can see or trace its processes.
   */
  probe(sandboxId: string, options?: ProbeOptions): Promise<SandboxProbe>;
  /**
   * Starts the sandbox's kept probe in the background (see ProbeOptions.keep) so that its first
   * check finds one. Optional; cheap when the probe is already there.
   */
  warmProbe?(sandboxId: string): void;
  /**
   * A long-running command without a TTY whose standard output arrives as it is written (the port
   * preview watches the inner engine's events this way). `close()` ends the command's standard
   * input, so commands run like this must exit at end of input. Optional: callers poll with `exec`
   * where a runtime has no streaming exec.
   */
  execStream?(sandboxId: string, cmd: string[]): Promise<ExecStream>;
  /** null when the sandbox no longer exists. */
  inspect(sandboxId: string): Promise<SandboxInfo | null>;
  /** Removes the sandbox and everything it made (container, volume); idempotent. */
  destroy(sandboxId: string): Promise<void>;
  /** Every sandbox of this namespace, running or not, found by its labels. */
  list(): Promise<SandboxInfo[]>;
  /** Storage left behind by sandboxes that no longer exist; removed by the reaper. */
  removeOrphanedStorage(liveSandboxIds: ReadonlySet<string>): Promise<number>;
  /** How close a sandbox is to its limits; disk is measured only when asked (it walks the tree). */
  usage(sandboxId: string, options?: { disk?: boolean }): Promise<SandboxUsage>;
  /**
   * Checks the host firewall that keeps sandboxes apart and away from the host (the egress policy,
   * and each sandbox's network port pinned to its own addresses) and, with `repair`, puts back what
   * is missing. Until a check passes, `create` refuses. Optional: a runtime whose isolation needs
   * no host firewall has none.
   */
  checkNetwork?(options: { repair: boolean }): Promise<NetworkCheck>;
  /** Calls back when a sandbox stops on its own (killed, engine restart) or a process in it is OOM-killed. */
  onSandboxEvent(listener: (sandboxId: string, event: SandboxEvent) => void): () => void;
  close(): Promise<void>;
}

export interface SandboxLimits {
  memoryBytes: number;
  cpus: number;
  pids: number;
  diskBytes: number;
}

export interface SandboxSpec {
  sessionId: string;
  ownerId: string;
  workshopId?: string | undefined;
  expiresAt: number;
  limits: SandboxLimits;
  /**
   * Hand the sandbox out before its inner engine answers (a learner's prompt needs none; the
   * sandbox's `docker` waits for its engine). Whoever uses the engine awaits `engineReady` first.
   */
  engineLater?: boolean;
}

export interface SandboxInfo {
  id: string;
  name: string;
  sessionId: string;
  ownerId: string;
  workshopId: string | undefined;
  createdAt: number;
  expiresAt: number;
  running: boolean;
  /** Address on the sandbox network (for the preview proxy); undefined when stopped. */
  address: string | undefined;
  /** Why it stopped, when it did: "oom" when the memory limit killed it, "member-lost" when the machine it ran on went down. */
  exitReason: string | undefined;
  /** The machine it runs on, for engines that place sandboxes over several (an LXD cluster's member); undefined on one machine. */
  member?: string | undefined;
}

export interface NetworkCheck {
  /** True when every rule is in place (after any repair). */
  ok: boolean;
  /** What is wrong, one sentence each, in words an operator understands (no engine error text). */
  problems: string[];
  /** What this check put back, one sentence each. */
  repaired: string[];
  at: number;
  /**
   * The engine did not answer, so nothing was checked: `ok` and `problems` are the last known
   * state (an engine outage is reported as such, not as a firewall problem); check again soon.
   */
  engineUnreachable?: boolean;
}

export type SandboxEvent = { kind: "stopped"; reason: string } | { kind: "oom" };

/**
 * What a learner reads when the machine their sandbox ran on went down (a "stopped" event with
 * reason "member-lost", or a command refused for that reason): what happened and what to do.
 */
export const MEMBER_LOST_MESSAGE =
  "The machine your sandbox ran on stopped. Start a new sandbox: it will run on another machine. Files and containers in the old one are lost.";

export interface SandboxUsage {
  memoryBytes: number;
  pids: number;
  /** Bytes under the inner /var/lib/docker plus the sandbox's own writable layer; undefined when not measured. */
  diskBytes: number | undefined;
}

export interface StartProgress {
  step: string;
  /** 0..1 */
  progress: number;
}

export interface ShellOptions {
  terminal: string;
  cols: number;
  rows: number;
}

export interface ShellStream {
  /** Raw TTY bytes both ways. */
  readonly stream: Duplex;
  resize(cols: number, rows: number): Promise<void>;
  close(): void;
}

export interface ProbeOptions {
  /**
   * Reuse the sandbox's kept probe (made now if there is none): its container and its command
   * server stay for the next checks, and `close()` only hands it back. It goes when the sandbox
   * goes, after some idle minutes, or when it reaches its lifetime. A check then costs no
   * container start and no exec through the host's engine per command. Runtimes may ignore it.
   */
  keep?: boolean;
}

export interface SandboxProbe {
  /**
   * Runs a command with the probe's own tools (`docker`, `curl`, on the sandbox's network).
   * `DOCKER_HOST` reaches the sandbox's own engine, and only it: every connection is checked to
   * end at the engine process itself. When one does not (a fake socket in its place), this
   * rejects with ShipshapeError("sandbox_failed") whose message tells the learner, and nothing
   * the impostor said reaches the caller.
   */
  exec(cmd: string[], options?: ExecOptions): Promise<ExecResult>;
  /** A regular file of the sandbox as its root sees it (symlinks resolve inside the sandbox); undefined when there is none. */
  readFile(path: string, maxBytes: number): Promise<string | undefined>;
  /**
   * Runs an author's command (a `script` check: a Killercoda verify.sh) with the probe's tools,
   * the sandbox's engine and network as in `exec`, and the sandbox's files under $SANDBOX_ROOT
   * (its /root as HOME and working directory).
   * WARNING: authors' scripts are trusted like reference solutions; never pass learner text here.
   */
  authorScript(cmd: string[], options?: ExecOptions): Promise<ExecResult>;
  close(): Promise<void>;
}

export interface ExecOptions {
  timeoutMs?: number;
  maxOutputBytes?: number;
  env?: string[];
}

export interface ExecStream {
  /** The command's standard output; ends when the command exits. Standard error is discarded. */
  readonly stdout: Readable;
  close(): void;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  truncated: boolean;
}
