import type { Duplex } from "node:stream";
import { floorExec } from "./engine-floor.ts";
import { PROMPT, stripAnsi } from "./terminal.ts";

/**
 * The floor for a terminal: an interactive `bash` exec'd with a TTY straight through the engine
 * API, with no server, WebSocket, terminal mirror or flow control in between.
 */
export class FloorTerminal {
  tail = "";
  received = 0;
  private stream: Duplex | undefined;
  private listeners = new Set<() => void>();
  private waiters = new Set<() => void>();

  static async open(sandboxId: string): Promise<FloorTerminal> {
    const t = new FloorTerminal();
    const exec = await floorExec(sandboxId, ["bash"], { stdin: true, env: ["TERM=xterm-256color"] });
    t.stream = exec.stream;
    t.stream.on("data", (c: Buffer) => {
      t.received += c.length;
      t.tail = (t.tail + c.toString("latin1")).slice(-8 * 1024);
      for (const l of t.listeners) l();
      for (const w of [...t.waiters]) w();
    });
    await exec.resize({ cols: 120, rows: 30 }).catch(() => {});
    return t;
  }

  onOutput(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  type(data: string): void {
    this.stream?.write(data);
  }

  prompt(timeoutMs = 30_000): Promise<void> {
    return this.until(() => PROMPT.test(stripAnsi(this.tail)), timeoutMs, "the prompt");
  }

  until(test: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (test()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`floor: timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const check = () => {
        if (!test()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      this.waiters.add(check);
    });
  }

  close(): void {
    this.stream?.end("exit\r");
    this.stream?.destroy();
  }
}
