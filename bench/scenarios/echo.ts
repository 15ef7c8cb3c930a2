import { cpuMs } from "../lib/server.ts";
import { now, round, sleep, summarize, type Summary } from "../lib/stats.ts";

/** What the echo test needs from a terminal: ours, the floor's or the peer's. */
export interface EchoTerminal {
  type(data: string): void;
  onOutput(listener: () => void): () => void;
}

/** Samples of one or more rounds with the same terminals. */
export interface EchoSamples {
  samples: number[];
  lost: number;
  cpuMs: number;
}

export interface EchoResult extends Summary {
  terminals: number;
  keys_per_s: number;
  /** Keystrokes whose echo did not come back within 2 s. */
  lost: number;
  /** CPU time the serving process spent per keystroke and its echo (not measured for the floor). */
  cpu_ms_per_key?: number;
}

const ECHO_TIMEOUT_MS = 2_000;

/**
 * One round: every terminal types at `keysPerSecond` for `durationMs` (start times spread over the
 * first interval), alternating a letter and a backspace so the line stays short; each keystroke is
 * timed from the send to the first output that follows it (its echo).
 */
export async function echoRound(
  terminals: EchoTerminal[],
  options: { keysPerSecond: number; durationMs: number; pid?: number },
  into: EchoSamples = { samples: [], lost: 0, cpuMs: 0 },
): Promise<EchoSamples> {
  const cpu0 = options.pid ? cpuMs(options.pid) : 0;
  const interval = 1000 / options.keysPerSecond;
  const end = now() + options.durationMs;
  await Promise.all(
    terminals.map(async (term, index) => {
      await sleep((index / terminals.length) * interval);
      for (let k = 0; now() < end; k++) {
        const sent = now();
        const rtt = await new Promise<number | undefined>((resolve) => {
          const timer = setTimeout(() => {
            off();
            resolve(undefined);
          }, ECHO_TIMEOUT_MS);
          const off = term.onOutput(() => {
            clearTimeout(timer);
            off();
            resolve(now() - sent);
          });
          term.type(k % 2 === 0 ? "x" : "\x7f");
        });
        if (rtt === undefined) into.lost++;
        else into.samples.push(rtt);
        const wait = sent + interval - now();
        if (wait > 0) await sleep(wait);
      }
      term.type("\x15"); // Ctrl-U: leave an empty command line
    }),
  );
  if (options.pid) into.cpuMs += cpuMs(options.pid) - cpu0;
  await sleep(200);
  return into;
}

export function echoResult(s: EchoSamples, terminals: number, keysPerSecond: number, withCpu: boolean): EchoResult {
  return {
    ...summarize(s.samples),
    terminals,
    keys_per_s: keysPerSecond,
    lost: s.lost,
    ...(withCpu ? { cpu_ms_per_key: round(s.cpuMs / Math.max(1, s.samples.length + s.lost), 3) } : {}),
  };
}
