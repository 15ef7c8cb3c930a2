import { now, sleep, summarize, type Summary } from "../lib/stats.ts";

/** What the echo test needs from a terminal, ours or the peer's. */
export interface EchoTerminal {
  type(data: string): void;
  onOutput(listener: () => void): () => void;
}

export interface EchoResult extends Summary {
  terminals: number;
  keys_per_s: number;
  /** Keystrokes whose echo did not come back within 2 s. */
  lost: number;
}

const ECHO_TIMEOUT_MS = 2_000;

/**
 * Every terminal types at `keysPerSecond` for `durationMs` (start times spread over the first
 * interval), alternating a letter and a backspace so the line stays short; each keystroke is timed
 * from the send to the first output that follows it (its echo).
 */
export async function echoLoad(terminals: EchoTerminal[], options: { keysPerSecond: number; durationMs: number }): Promise<EchoResult> {
  const interval = 1000 / options.keysPerSecond;
  const samples: number[] = [];
  let lost = 0;
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
        if (rtt === undefined) lost++;
        else samples.push(rtt);
        const wait = sent + interval - now();
        if (wait > 0) await sleep(wait);
      }
      term.type("\x15"); // Ctrl-U: leave an empty command line
      await sleep(100);
    }),
  );
  return { ...summarize(samples), terminals: terminals.length, keys_per_s: options.keysPerSecond, lost };
}
