import { floorExec } from "../lib/engine-floor.ts";
import { cpuMs, sampleRss } from "../lib/server.ts";
import { now, round } from "../lib/stats.ts";

/** What the throughput test needs from a terminal, ours or the peer's. */
export interface StreamTerminal {
  received: number;
  tail: string;
  type(data: string): void;
  until(test: () => boolean, timeoutMs: number, what: string): Promise<void>;
}

export interface ThroughputResult {
  bytes: number;
  seconds: number;
  mb_per_s: number;
  /** Server process RSS before, and its peak while the output streamed (sampled every 50 ms). */
  rss_start_mb: number;
  rss_peak_mb: number;
  /** CPU time the server process spent per MB delivered: what the output costs, whatever else the machine runs. */
  cpu_ms_per_mb: number;
  completed: boolean;
}

/** Lines of 79 characters and a newline, like a big log or `cat` of a large file. */
const LINE = "0123456789abcdefghijklmnopqrstuvwxyz-0123456789abcdefghijklmnopqrstuvwxyz-abcd";

/**
 * Prints `megabytes` of output in the shell and times it until the last byte (a marker printed
 * after it) has arrived, the client acknowledging as it reads. RSS of `pid` is sampled meanwhile.
 */
export async function throughput(term: StreamTerminal, pid: number, options: { megabytes: number; timeoutMs: number }): Promise<ThroughputResult> {
  const marker = `TP${Math.random().toString(36).slice(2, 8)}END`;
  const before = term.received;
  const rss = sampleRss(pid);
  const cpu0 = cpuMs(pid);
  const t0 = now();
  // The marker is split in the command line, so only the real output contains it whole.
  // Ctrl-U first: whatever was left on the command line goes.
  term.type(`\x15yes ${LINE} | head -c ${options.megabytes * 1_000_000}; echo; echo ${marker.slice(0, 4)}""${marker.slice(4)}\r`);
  let completed = true;
  await term.until(() => term.tail.includes(marker), options.timeoutMs, "the end of the output").catch(() => {
    completed = false;
  });
  const seconds = (now() - t0) / 1000;
  const cpu = cpuMs(pid) - cpu0;
  const { peakMb, startMb } = rss.stop();
  if (!completed) {
    term.type("\x03");
  }
  const bytes = term.received - before;
  return {
    bytes,
    seconds: round(seconds, 2),
    mb_per_s: round(bytes / 1e6 / seconds),
    rss_start_mb: round(startMb),
    rss_peak_mb: round(peakMb),
    cpu_ms_per_mb: round(cpu / (bytes / 1e6)),
    completed,
  };
}

/**
 * The floor: the same output from an exec with a TTY straight through the engine API, read as fast
 * as the socket delivers it (no terminal emulation, no WebSocket, no flow control).
 */
export async function throughputFloor(sandboxId: string, options: { megabytes: number; timeoutMs: number }): Promise<{ bytes: number; seconds: number; mb_per_s: number }> {
  const { stream, startedAt: t0 } = await floorExec(sandboxId, ["sh", "-c", `yes ${LINE} | head -c ${options.megabytes * 1_000_000}`], { stdin: false });
  let bytes = 0;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      stream.destroy();
      resolve();
    }, options.timeoutMs);
    stream.on("data", (c: Buffer) => (bytes += c.length));
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    stream.once("end", done);
    stream.once("close", done);
  });
  const seconds = (now() - t0) / 1000;
  return { bytes, seconds: round(seconds, 2), mb_per_s: round(bytes / 1e6 / seconds) };
}
