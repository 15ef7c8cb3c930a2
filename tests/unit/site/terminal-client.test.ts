import { describe, expect, it } from "vitest";
import {
  ACK_BATCH_BYTES,
  PING_INTERVAL_MS,
  PONG_TIMEOUT_MS,
  QUEUE_MAX_WAIT_MS,
  QUEUE_SETTLE_MS,
  TerminalConnection,
  backoffDelay,
  type Clock,
  type ISessionSource,
  type ITerminalSink,
  type WebSocketLike,
} from "../../../src/client/terminal/terminal-connection.ts";
import type { SandboxStatus } from "../../../src/client/sandbox/sandbox-status.ts";

/** A WebSocket the test drives by hand: it records what the client sends. */
class FakeSocket implements WebSocketLike {
  binaryType = "blob";
  readyState = 0;
  sent: Array<string | Uint8Array> = [];
  closedWith: { code?: number; reason?: string } | undefined;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  readonly url: string;
  constructor(url: string) {
    this.url = url;
  }

  send(data: string | ArrayBufferLike | ArrayBufferView): void {
    if (typeof data === "string") this.sent.push(data);
    else if (ArrayBuffer.isView(data)) this.sent.push(new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice());
    else this.sent.push(new Uint8Array(data as ArrayBuffer));
  }
  close(code?: number, reason?: string): void {
    this.closedWith = { code, reason };
    this.readyState = 3;
  }
  // Server side:
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }
  message(value: Record<string, unknown>): void {
    this.onmessage?.({ data: JSON.stringify(value) });
  }
  output(text: string): void {
    const bytes = new TextEncoder().encode(text);
    this.onmessage?.({ data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) });
  }
  serverClose(code: number, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  json(): Array<Record<string, unknown>> {
    return this.sent.filter((m): m is string => typeof m === "string").map((m) => JSON.parse(m) as Record<string, unknown>);
  }
  binary(): string[] {
    return this.sent.filter((m): m is Uint8Array => typeof m !== "string").map((m) => new TextDecoder().decode(m));
  }
}

class FakeClock implements Clock {
  time = 1_000;
  private timers: Array<{ at: number; fn: () => void; id: number }> = [];
  private nextId = 1;
  now(): number {
    return this.time;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.push({ at: this.time + ms, fn, id });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((timer) => timer.id !== handle);
  }
  /** Runs the timers due within `ms`, in order. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.time = next.at;
      next.fn();
    }
    this.time = end;
  }
}

/** A terminal whose write callbacks the test releases, like xterm's parser catching up. */
class FakeSink implements ITerminalSink {
  cols = 80;
  rows = 24;
  events: string[] = [];
  private pending: Array<() => void> = [];
  autoFlush = true;
  write(data: Uint8Array, done: () => void): void {
    this.events.push(`write:${new TextDecoder().decode(data)}`);
    if (this.autoFlush) done();
    else this.pending.push(done);
  }
  reset(): void {
    this.events.push("reset");
  }
  flush(count = Infinity): void {
    while (count-- > 0 && this.pending.length) this.pending.shift()!();
  }
}

const flushPromises = () => new Promise((resolve) => setTimeout(resolve, 0));

function setup(options: { session?: ISessionSource } = {}) {
  const sockets: FakeSocket[] = [];
  const statuses: SandboxStatus[] = [];
  const clock = new FakeClock();
  const sink = new FakeSink();
  let token = "token-1";
  const session: ISessionSource = options.session ?? { credentials: async () => ({ sessionId: "s1", token }) };
  const connection = new TerminalConnection({
    name: "main",
    sink,
    session,
    url: "ws://test/ws/terminal",
    clock,
    createSocket: (url) => {
      const socket = new FakeSocket(url);
      sockets.push(socket);
      return socket;
    },
    onStatus: (status) => statuses.push(status),
  });
  const latest = () => sockets[sockets.length - 1]!;
  return { connection, sockets, latest, statuses, clock, sink, setToken: (t: string) => (token = t) };
}

async function connected(t: ReturnType<typeof setup>, ready: Record<string, unknown> = { replayed: false }) {
  t.connection.connect();
  await flushPromises();
  t.latest().open();
  t.latest().message({ type: "ready", sessionId: "s1", terminal: "main", ...ready });
}

describe("terminal client protocol", () => {
  it("says hello with the session token, its name and its size, as the first message", async () => {
    const t = setup();
    t.connection.connect();
    await flushPromises();
    expect(t.latest().url).toBe("ws://test/ws/terminal");
    expect(t.latest().binaryType).toBe("arraybuffer");
    t.latest().open();
    expect(t.latest().json()).toEqual([{ type: "hello", token: "token-1", terminal: "main", cols: 80, rows: 24 }]);
  });

  it("shows start-up progress from status messages, then ready", async () => {
    const t = setup();
    t.connection.connect();
    await flushPromises();
    t.latest().open();
    t.latest().message({ type: "status", state: "starting", step: "starting the Docker engine", progress: 0.4 });
    expect(t.statuses.at(-1)).toEqual({ state: "starting", step: "starting the Docker engine", progress: 0.4 });
    t.latest().message({ type: "ready", sessionId: "s1", terminal: "main", replayed: false });
    expect(t.statuses.at(-1)).toEqual({ state: "ready" });
  });

  it("sends keystrokes as binary frames once ready, and drops them before", async () => {
    const t = setup();
    t.connection.connect();
    await flushPromises();
    t.latest().open();
    t.connection.sendInput("lost");
    t.latest().message({ type: "ready", sessionId: "s1", terminal: "main", replayed: false });
    t.connection.sendInput("ls\r");
    expect(t.latest().binary()).toEqual(["ls\r"]);
  });

  it("keeps queued input (Run buttons) until a new shell has printed its prompt", async () => {
    const t = setup();
    t.connection.sendInput("\x03", { queue: true });
    t.connection.sendInput("docker ps\r", { queue: true });
    t.connection.connect();
    await flushPromises();
    t.latest().open();
    expect(t.latest().binary()).toEqual([]);
    t.latest().message({ type: "ready", sessionId: "s1", terminal: "main", replayed: false });
    t.latest().output("\x1b[H\x1b[J");
    t.clock.advance(QUEUE_SETTLE_MS - 1);
    t.latest().output("sandbox:~# ");
    t.connection.sendInput("ls\r", { queue: true });
    t.clock.advance(QUEUE_SETTLE_MS - 1);
    expect(t.latest().binary()).toEqual([]);
    t.clock.advance(1);
    expect(t.latest().binary()).toEqual(["\x03", "docker ps\r", "ls\r"]);
  });

  it("sends queued input after a while even if the new shell prints nothing", async () => {
    const t = setup();
    t.connection.sendInput("docker ps\r", { queue: true });
    await connected(t);
    t.clock.advance(QUEUE_MAX_WAIT_MS - 1);
    expect(t.latest().binary()).toEqual([]);
    t.clock.advance(1);
    expect(t.latest().binary()).toEqual(["docker ps\r"]);
  });

  it("sends queued input at once to a shell that was already running (replayed)", async () => {
    const t = setup();
    t.connection.sendInput("docker ps\r", { queue: true });
    await connected(t, { replayed: true });
    expect(t.latest().binary()).toEqual(["docker ps\r"]);
  });

  it("acknowledges output after the terminal has parsed it, when the write queue drains", async () => {
    const t = setup();
    await connected(t);
    t.sink.autoFlush = false;
    t.latest().output("hello ");
    t.latest().output("world");
    expect(t.latest().json().filter((m) => m.type === "ack")).toEqual([]);
    t.sink.flush(1);
    expect(t.latest().json().filter((m) => m.type === "ack")).toEqual([]);
    t.sink.flush();
    expect(t.latest().json().filter((m) => m.type === "ack")).toEqual([{ type: "ack", bytes: 11 }]);
  });

  it("acknowledges in batches of at least 16 KiB while output keeps coming", async () => {
    const t = setup();
    await connected(t);
    t.sink.autoFlush = false;
    const chunk = "x".repeat(4096);
    for (let i = 0; i < 6; i++) t.latest().output(chunk);
    t.sink.flush(4);
    expect(t.latest().json().filter((m) => m.type === "ack")).toEqual([{ type: "ack", bytes: ACK_BATCH_BYTES }]);
    t.sink.flush();
    expect(t.latest().json().filter((m) => m.type === "ack")).toEqual([
      { type: "ack", bytes: ACK_BATCH_BYTES },
      { type: "ack", bytes: 8192 },
    ]);
  });

  it("on a replay, resets the screen before drawing the replayed bytes, whichever comes first", async () => {
    const t = setup();
    t.connection.connect();
    await flushPromises();
    t.latest().open();
    t.latest().output("old screen");
    t.latest().message({ type: "ready", sessionId: "s1", terminal: "main", replayed: true });
    t.latest().output("live");
    expect(t.sink.events).toEqual(["reset", "write:old screen", "write:live"]);
    // Bytes held before `ready` are acknowledged too, so a large replay cannot stall the server.
    const acked = t.latest().json().filter((m) => m.type === "ack").reduce((sum, m) => sum + Number(m.bytes), 0);
    expect(acked).toBe("old screen".length + "live".length);
  });

  it("sends a resize only when the size changed", async () => {
    const t = setup();
    await connected(t);
    t.connection.resize(80, 24);
    t.connection.resize(120, 40);
    t.connection.resize(120, 40);
    expect(t.latest().json().filter((m) => m.type === "resize")).toEqual([{ type: "resize", cols: 120, rows: 40 }]);
  });

  it("reports notices and ignores unknown message types", async () => {
    const notices: unknown[] = [];
    const sockets: FakeSocket[] = [];
    const connection = new TerminalConnection({
      name: "main",
      sink: new FakeSink(),
      session: { credentials: async () => ({ sessionId: "s1", token: "t" }) },
      url: "ws://test/ws/terminal",
      clock: new FakeClock(),
      createSocket: (url) => {
        const socket = new FakeSocket(url);
        sockets.push(socket);
        return socket;
      },
      onNotice: (notice) => notices.push(notice),
    });
    connection.connect();
    await flushPromises();
    sockets[0]!.open();
    sockets[0]!.message({ type: "from-the-future" });
    sockets[0]!.message({ type: "notice", code: "memory_limit", message: "Your sandbox ran out of memory." });
    expect(notices).toEqual([{ code: "memory_limit", message: "Your sandbox ran out of memory." }]);
  });

  it("reconnects after a dropped connection with back-off doubling from 0.25 s to 5 s", async () => {
    const t = setup();
    await connected(t);
    const delays: number[] = [];
    for (let attempt = 0; attempt < 7; attempt++) {
      const before = t.sockets.length;
      t.latest().serverClose(1006);
      expect(t.statuses.at(-1)?.state).toBe("reconnecting");
      let waited = 0;
      while (t.sockets.length === before) {
        t.clock.advance(50);
        waited += 50;
        await flushPromises();
      }
      delays.push(waited);
    }
    expect(delays).toEqual([250, 500, 1000, 2000, 4000, 5000, 5000]);
    expect([0, 1, 2, 3, 4, 5, 6].map(backoffDelay)).toEqual(delays);
  });

  it("starts the back-off again after a successful reconnect, and the new socket says hello", async () => {
    const t = setup();
    await connected(t);
    t.latest().serverClose(1001, "The server is restarting; reconnecting…");
    expect(t.statuses.at(-1)).toEqual({ state: "reconnecting", message: "The server is restarting; reconnecting…" });
    t.clock.advance(250);
    await flushPromises();
    t.latest().open();
    expect(t.latest().json()[0]).toMatchObject({ type: "hello", token: "token-1" });
    t.latest().message({ type: "ready", sessionId: "s1", terminal: "main", replayed: true });
    t.latest().serverClose(1006);
    t.clock.advance(249);
    await flushPromises();
    expect(t.sockets).toHaveLength(2);
    t.clock.advance(1);
    await flushPromises();
    expect(t.sockets).toHaveLength(3);
  });

  it.each([
    [4001, "", "This terminal belongs to another browser session."],
    [4004, "", "This sandbox no longer exists. Start a new one."],
    [4010, "", "Your sandbox expired. Start a new one."],
    [4010, "Your sandbox was removed after 30 minutes without activity. Start a new one.", "Your sandbox was removed after 30 minutes without activity. Start a new one."],
    [4011, "", "Your sandbox stopped. Start a new one."],
  ])("does not reconnect after close code %i (reason %j), and says why", async (code, reason, message) => {
    const t = setup();
    await connected(t);
    t.latest().serverClose(code, reason);
    expect(t.statuses.at(-1)).toEqual({ state: "expired", code, message });
    t.clock.advance(60_000);
    await flushPromises();
    expect(t.sockets).toHaveLength(1);
  });

  it("asks the server whether the session still exists when sockets keep failing to open", async () => {
    let asked = 0;
    const t = setup({
      session: {
        credentials: async () => ({ sessionId: "s1", token: "t" }),
        checkAlive: async () => (++asked, "gone"),
      },
    });
    t.connection.connect();
    for (let i = 0; i < 3; i++) {
      await flushPromises();
      t.latest().serverClose(1006); // Upgrade refused: never opened.
      await flushPromises();
      t.clock.advance(5_000);
    }
    await flushPromises();
    expect(asked).toBe(1);
    expect(t.statuses.at(-1)).toMatchObject({ state: "expired", code: 4004 });
  });

  it("pings while connected and reconnects when no pong comes back", async () => {
    const t = setup();
    await connected(t);
    t.clock.advance(PING_INTERVAL_MS);
    const ping = t.latest().json().find((m) => m.type === "ping");
    expect(ping).toEqual({ type: "ping", t: t.clock.now() });
    t.clock.advance(5);
    t.latest().message({ type: "pong", t: ping!.t });
    expect(t.connection.lastRttMs).toBe(5);
    t.clock.advance(PING_INTERVAL_MS);
    t.clock.advance(PONG_TIMEOUT_MS);
    expect(t.sockets[0]!.closedWith?.code).toBe(4000);
    expect(t.statuses.at(-1)?.state).toBe("reconnecting");
  });

  it("after a reset (4012) clears the old sandbox's screen and reconnects at once with the same session", async () => {
    const t = setup();
    await connected(t);
    t.latest().serverClose(4012, "Your sandbox is being replaced by a fresh one; reconnecting…");
    expect(t.sink.events).toContain("reset");
    expect(t.statuses.at(-1)).toEqual({ state: "reconnecting", message: "Your sandbox is being replaced by a fresh one; reconnecting…" });
    t.clock.advance(250);
    await flushPromises();
    expect(t.sockets).toHaveLength(2);
    t.latest().open();
    expect(t.latest().json()[0]).toMatchObject({ type: "hello", token: "token-1" });
  });

  it("restart() drops the screen and connects with the new sandbox's token", async () => {
    const t = setup();
    await connected(t);
    t.latest().serverClose(4010, "");
    t.setToken("token-2");
    t.connection.restart();
    await flushPromises();
    expect(t.sink.events).toContain("reset");
    t.latest().open();
    expect(t.latest().json()[0]).toMatchObject({ type: "hello", token: "token-2" });
  });

  it("ignores output from a socket it already replaced", async () => {
    const t = setup();
    await connected(t);
    const old = t.latest();
    t.sink.autoFlush = false;
    old.output("late");
    old.serverClose(1006);
    t.clock.advance(250);
    await flushPromises();
    t.latest().open();
    t.sink.flush();
    expect(t.latest().json().filter((m) => m.type === "ack")).toEqual([]);
  });
});
