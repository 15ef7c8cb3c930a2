import xtermHeadless from "@xterm/headless";
import serializeAddon from "@xterm/addon-serialize";
import type { Logger } from "../log.ts";
import type { ServerMetrics } from "../metrics.ts";
import type { SandboxRuntime, ShellStream } from "../runtime/types.ts";
import type { ServerMessage } from "../../../contracts/terminal-protocol.ts";

const { Terminal: HeadlessTerminal } = xtermHeadless;
const { SerializeAddon } = serializeAddon;

/** Per-client unacknowledged output above which the shell's output stream is paused. */
export const HIGH_WATERMARK = 256 * 1024;
/** ...and below which it is read again. */
export const LOW_WATERMARK = 64 * 1024;
/** Lines of scrollback replayed to a reconnecting browser. */
const SCROLLBACK = 1000;
/** An old shell is asked to redraw after a restart at most this many times, each given this long to draw. */
const REDRAW_ATTEMPTS = 4;
const REDRAW_WAIT_MS = 750;
/** Output arriving in one burst is sent as one frame, up to this size. */
const MAX_BATCH = 64 * 1024;
/**
 * Output handed to the mirror and not yet parsed by it, above which the shell is paused as well
 * (and below MIRROR_LOW_WATERMARK read again): the mirror parses on its own schedule, and on a busy
 * machine it could otherwise fall megabytes behind a flood of output and hold all of it in memory.
 */
const MIRROR_HIGH_WATERMARK = 1024 * 1024;
const MIRROR_LOW_WATERMARK = 256 * 1024;

/** What the hub needs from a connected browser; transport-agnostic so it is testable. */
export interface AttachedBrowser {
  readonly readOnly: boolean;
  sendOutput(data: Uint8Array): void;
  sendMessage(message: ServerMessage): void;
  close(code: number, reason: string): void;
}

interface Attached {
  client: AttachedBrowser;
  unacked: number;
  /** Live output held back while the replay is being prepared. */
  pending: Uint8Array[] | null;
}

/**
 * One named shell in one sandbox, shared by every socket that attaches to it.
 * It owns the exec stream, a headless mirror of the screen (replayed on reconnect),
 * and ACK-based flow control: the slowest attached browser sets the pace.
 */
export class TerminalHub {
  readonly name: string;
  private readonly sandboxId: string;
  private readonly runtime: SandboxRuntime;
  private readonly log: Logger;
  private readonly metrics: ServerMetrics;
  private readonly clients = new Map<AttachedBrowser, Attached>();
  private readonly mirror: InstanceType<typeof HeadlessTerminal>;
  private readonly serializer: InstanceType<typeof SerializeAddon>;
  private shell: ShellStream | undefined;
  private starting: Promise<void> | undefined;
  private paused = false;
  /** Set for an old shell (see nudgeRedraw); a shell started after `exit` is new and needs none. */
  private redrawOnStart: boolean;
  private batch: Buffer[] = [];
  private batchBytes = 0;
  private flushScheduled = false;
  /** Bytes written to the mirror that it has not parsed yet. */
  private mirrorBacklog = 0;
  private disposed = false;
  private restarts = 0;
  private cols: number;
  private rows: number;
  /** Called when the shell ends and cannot be restarted (sandbox gone). */
  onDead: (reason: string) => void = () => {};

  constructor(options: {
    name: string;
    sandboxId: string;
    runtime: SandboxRuntime;
    log: Logger;
    metrics: ServerMetrics;
    cols: number;
    rows: number;
    /** The shell is an old one (the server restarted): make it redraw once attached. */
    redrawOnStart?: boolean;
  }) {
    this.redrawOnStart = options.redrawOnStart ?? false;
    this.name = options.name;
    this.sandboxId = options.sandboxId;
    this.runtime = options.runtime;
    this.log = options.log.child({ terminal: options.name });
    this.metrics = options.metrics;
    this.cols = options.cols;
    this.rows = options.rows;
    this.mirror = new HeadlessTerminal({ cols: this.cols, rows: this.rows, scrollback: SCROLLBACK, allowProposedApi: true });
    this.serializer = new SerializeAddon();
    this.mirror.loadAddon(this.serializer);
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** The shell's window size (a read-only watcher draws at the learner's size). */
  get size(): { cols: number; rows: number } {
    return { cols: this.cols, rows: this.rows };
  }

  /** Starts the shell once; later callers wait for the same start. */
  start(): Promise<void> {
    this.starting ??= this.spawn();
    return this.starting;
  }

  private async spawn(): Promise<void> {
    const shell = await this.runtime.shell(this.sandboxId, { terminal: this.name, cols: this.cols, rows: this.rows });
    if (this.disposed) {
      shell.close();
      return;
    }
    this.shell = shell;
    shell.stream.on("data", (chunk: Buffer) => this.onOutput(chunk));
    if (this.clients.size === 0) this.pause();
    shell.stream.once("close", () => this.onShellEnded(shell));
    shell.stream.once("end", () => this.onShellEnded(shell));
    shell.stream.on("error", (e: Error) => this.log.warn("shell stream error", { error: e.message }));
    // After dtach's first output (its clear-screen on attach) and a moment for it to install its
    // SIGWINCH handler: a size change made before dtach runs is over by the time it reads the
    // size, and nothing would redraw.
    if (this.redrawOnStart) shell.stream.once("data", () => setTimeout(() => void this.nudgeRedraw(shell), 50));
    this.redrawOnStart = false;
  }

  /**
   * Makes an old shell draw itself again: after a server restart dtach gives back a shell sitting
   * silently at its prompt, and the new mirror is empty, so the learner would see a blank screen
   * until they pressed a key. A real size change is what every terminal program redraws on
   * (readline reprints the prompt line, full-screen programs repaint); unlike a typed Ctrl-L it
   * never ends up in a program's input.
   */
  private async nudgeRedraw(shell: ShellStream): Promise<void> {
    // Readline redraws only when the size it reads differs from the last one it knew, and reads it
    // when it gets to the signal: two resizes in a row can both be over by then, and nothing is
    // drawn (every time on a busy machine, after a crash left older dtach clients attached). So
    // one change at a time, each given a moment to draw, again until the shell has drawn (bounded).
    try {
      for (let attempt = 0; attempt < REDRAW_ATTEMPTS && this.shell === shell && !this.disposed; attempt++) {
        const drawnSmaller = this.nextOutput(shell, REDRAW_WAIT_MS);
        await shell.resize(this.cols, this.rows > 2 ? this.rows - 1 : this.rows + 1);
        const smaller = await drawnSmaller;
        const drawnBack = this.nextOutput(shell, REDRAW_WAIT_MS);
        await shell.resize(this.cols, this.rows); // the size now, even if a browser resized meanwhile
        if ((await drawnBack) || smaller) return;
      }
      this.log.debug("an old shell did not redraw after a restart");
    } catch (e) {
      this.log.debug("redraw resize failed", { error: String(e) });
    }
  }

  /** True when the shell writes something within `ms`. */
  private nextOutput(shell: ShellStream, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (drawn: boolean) => {
        clearTimeout(timer);
        shell.stream.off("data", onData);
        resolve(drawn);
      };
      const onData = () => done(true);
      const timer = setTimeout(() => done(false), ms);
      shell.stream.on("data", onData);
    });
  }

  private onShellEnded(shell: ShellStream): void {
    if (this.shell !== shell || this.disposed) return;
    this.shell = undefined;
    this.paused = false;
    void this.runtime.inspect(this.sandboxId).then(
      (info) => {
        if (this.disposed) return;
        if (!info?.running) return this.onDead(info?.exitReason ?? "removed");
        // The learner typed `exit`: give them a fresh shell rather than a dead terminal.
        if (++this.restarts > 20) return this.onDead("the shell keeps exiting");
        this.broadcast({ type: "notice", code: "shell_restarted", message: "The shell exited; a new one was started." });
        this.starting = this.spawn().catch((e: unknown) => this.onDead(String(e)));
      },
      () => this.onDead("engine unreachable"),
    );
  }

  /**
   * Adds a browser. It first receives the mirrored screen and scrollback, then live output.
   * Live output that arrives meanwhile is queued for it, so nothing is lost or duplicated.
   */
  attach(client: AttachedBrowser): Promise<boolean> {
    // Earlier output belongs to the mirror (and the browsers already attached), not to this
    // client's queue: flushed before the client is added, it reaches the client once, in the replay.
    this.flush();
    const entry: Attached = { client, unacked: 0, pending: [] };
    this.clients.set(client, entry);
    this.maybeResume();
    return new Promise((resolve) => {
      this.mirror.write("", () => {
        if (!this.clients.has(client)) return resolve(false);
        const screen = this.serializer.serialize({ scrollback: SCROLLBACK });
        const replayed = screen.length > 0;
        if (replayed) this.deliver(entry, Buffer.from(screen, "utf8"));
        const queued = entry.pending ?? [];
        entry.pending = null;
        for (const chunk of queued) this.deliver(entry, chunk);
        resolve(replayed);
      });
    });
  }

  detach(client: AttachedBrowser): void {
    this.clients.delete(client);
    // Nobody is watching: stop reading, so a runaway `yes` costs nothing until someone returns.
    if (this.clients.size === 0) this.pause();
    else this.maybeResume();
  }

  input(client: AttachedBrowser, data: Uint8Array): void {
    if (client.readOnly || !this.shell) return;
    this.metrics.bytesIn.inc(data.length);
    this.shell.stream.write(data);
  }

  ack(client: AttachedBrowser, bytes: number): void {
    const entry = this.clients.get(client);
    if (!entry) return;
    entry.unacked = Math.max(0, entry.unacked - bytes);
    this.maybeResume();
  }

  /** Resolves once the screen mirror has parsed every byte handed to it so far. */
  mirrorSettled(): Promise<void> {
    return new Promise((resolve) => this.mirror.write("", resolve));
  }

  async resize(cols: number, rows: number): Promise<void> {
    if (cols === this.cols && rows === this.rows) return;
    this.cols = cols;
    this.rows = rows;
    this.flush(); // output so far is drawn at the old size, as the shell wrote it
    this.mirror.resize(cols, rows);
    await this.shell?.resize(cols, rows).catch((e: unknown) => this.log.debug("resize failed", { error: String(e) }));
  }

  broadcast(message: ServerMessage): void {
    for (const { client } of this.clients.values()) client.sendMessage(message);
  }

  /** Closes every client with the code and ends the shell attachment (the shell itself lives on in dtach). */
  dispose(code: number, reason: string): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const { client } of this.clients.values()) client.close(code, reason);
    this.clients.clear();
    this.shell?.close();
    this.shell = undefined;
    this.mirror.dispose();
  }

  private onOutput(chunk: Buffer): void {
    this.batch.push(chunk);
    this.batchBytes += chunk.length;
    if (this.batchBytes >= MAX_BATCH) this.flush();
    else if (!this.flushScheduled) {
      // Coalesce what arrives in the same turn of the event loop into one frame.
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.batchBytes === 0) return;
    const data = this.batch.length === 1 ? this.batch[0]! : Buffer.concat(this.batch, this.batchBytes);
    this.batch = [];
    this.batchBytes = 0;
    this.writeMirror(data);
    for (const entry of this.clients.values()) {
      if (entry.pending) entry.pending.push(data);
      else this.deliver(entry, data);
    }
  }

  /** The mirror gets output a batch at a time: one 64 KiB write parses in less CPU than sixteen 4 KiB ones (11 against 13-16 ms per MB here). */
  private writeMirror(data: Buffer): void {
    if (this.disposed) return;
    this.mirrorBacklog += data.length;
    this.mirror.write(data, () => {
      this.mirrorBacklog -= data.length;
      if (this.mirrorBacklog <= MIRROR_LOW_WATERMARK) this.maybeResume();
    });
    if (this.mirrorBacklog > MIRROR_HIGH_WATERMARK) this.pause();
  }

  private deliver(entry: Attached, data: Uint8Array): void {
    entry.unacked += data.length;
    this.metrics.bytesOut.inc(data.length);
    entry.client.sendOutput(data);
    if (entry.unacked > HIGH_WATERMARK) this.pause();
  }

  private pause(): void {
    if (this.paused || !this.shell) return;
    this.paused = true;
    this.shell.stream.pause();
  }

  private maybeResume(): void {
    if (!this.paused || this.clients.size === 0 || this.mirrorBacklog > MIRROR_LOW_WATERMARK) return;
    for (const entry of this.clients.values()) if (entry.unacked > LOW_WATERMARK) return;
    this.paused = false;
    this.shell?.stream.resume();
  }
}
