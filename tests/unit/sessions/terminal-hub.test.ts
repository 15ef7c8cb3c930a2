import { Duplex } from "node:stream";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../../sandbox-server/src/log.ts";
import { createServerMetrics, Metrics } from "../../../sandbox-server/src/metrics.ts";
import type { SandboxRuntime, ShellStream } from "../../../sandbox-server/src/runtime/types.ts";
import { HIGH_WATERMARK, LOW_WATERMARK, TerminalHub, type AttachedBrowser } from "../../../sandbox-server/src/sessions/terminal-hub.ts";

/** A shell that echoes what the test says it printed, and records what was typed into it. */
class FakeShell extends Duplex {
  typed: Buffer[] = [];
  override _read(): void {}
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.typed.push(chunk);
    cb();
  }
  print(text: string | Buffer): void {
    this.push(typeof text === "string" ? Buffer.from(text) : text);
  }
}

function hubWithShell() {
  const shell = new FakeShell();
  const runtime = {
    shell: async (): Promise<ShellStream> => ({ stream: shell, resize: async () => {}, close: () => shell.destroy() }),
    inspect: async () => null,
  } as unknown as SandboxRuntime;
  const hub = new TerminalHub({
    name: "main",
    sandboxId: "sb",
    runtime,
    log: silentLogger,
    metrics: createServerMetrics(new Metrics()),
    cols: 80,
    rows: 24,
  });
  return { hub, shell };
}

function client(readOnly = false) {
  const received: Buffer[] = [];
  const c: AttachedBrowser & { text(): string; bytes(): number } = {
    readOnly,
    sendOutput: (d) => received.push(Buffer.from(d)),
    sendMessage: () => {},
    close: () => {},
    text: () => Buffer.concat(received).toString("utf8"),
    bytes: () => received.reduce((n, b) => n + b.length, 0),
  };
  return c;
}

const tick = () => new Promise((r) => setImmediate(r));

describe("terminal hub", () => {
  it("replays the screen to a browser that attaches later, then streams live output once", async () => {
    const { hub, shell } = hubWithShell();
    await hub.start();
    const first = client();
    await hub.attach(first);
    shell.print("$ echo one\r\none\r\n");
    await tick();
    const second = client();
    const replayed = await hub.attach(second);
    expect(replayed).toBe(true);
    expect(second.text()).toContain("one");
    shell.print("two\r\n");
    await tick();
    await tick();
    expect(second.text().match(/two/g)).toHaveLength(1);
    expect(first.text()).toBe("$ echo one\r\none\r\ntwo\r\n");
  });

  it("pauses the shell above the high watermark and resumes below the low one", async () => {
    const { hub, shell } = hubWithShell();
    await hub.start();
    const c = client();
    await hub.attach(c);
    const chunk = Buffer.alloc(32 * 1024, 0x79);
    for (let i = 0; i < 12; i++) shell.print(chunk);
    await tick();
    await tick();
    expect(c.bytes()).toBeGreaterThan(HIGH_WATERMARK);
    expect(shell.isPaused()).toBe(true);
    await hub.mirrorSettled(); // from here only the browser's unacknowledged output holds the shell
    hub.ack(c, c.bytes() - LOW_WATERMARK - 1); // still above the low watermark: stays paused
    expect(shell.isPaused()).toBe(true);
    hub.ack(c, 1);
    expect(shell.isPaused()).toBe(false);
  });

  it("gives output that arrived just before a browser attached to it once, in the replay", async () => {
    const { hub, shell } = hubWithShell();
    await hub.start();
    await hub.attach(client());
    shell.print("just-before\r\n");
    // The output is read but not yet sent (it waits for the end of this turn of the event loop).
    for (let i = 0; i < 5; i++) await new Promise((r) => process.nextTick(r));
    const late = client();
    await hub.attach(late);
    await tick();
    expect(late.text().match(/just-before/g)).toHaveLength(1);
  });

  it("pauses the shell while its screen mirror is far behind, even for a browser that keeps up", async () => {
    const { hub, shell } = hubWithShell();
    await hub.start();
    const c = client();
    c.sendOutput = (d) => hub.ack(c, d.length); // acknowledges everything at once
    await hub.attach(c);
    for (let i = 0; i < 32; i++) shell.print(Buffer.alloc(64 * 1024, 0x79)); // 2 MiB, faster than the mirror parses
    expect(shell.isPaused()).toBe(true);
    const deadline = Date.now() + 10_000;
    while (shell.isPaused() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(shell.isPaused()).toBe(false); // read again once the mirror has caught up
  });

  it("stops reading when nobody is attached", async () => {
    const { hub, shell } = hubWithShell();
    await hub.start();
    const c = client();
    await hub.attach(c);
    expect(shell.isPaused()).toBe(false);
    hub.detach(c);
    expect(shell.isPaused()).toBe(true);
  });

  it("ignores input from a read-only viewer", async () => {
    const { hub, shell } = hubWithShell();
    await hub.start();
    const viewer = client(true);
    const learner = client();
    await hub.attach(viewer);
    await hub.attach(learner);
    hub.input(viewer, Buffer.from("rm -rf /\r"));
    hub.input(learner, Buffer.from("ls\r"));
    expect(Buffer.concat(shell.typed).toString()).toBe("ls\r");
  });
});
