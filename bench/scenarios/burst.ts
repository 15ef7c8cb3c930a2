import { waitForPool, type BenchServer } from "../lib/server.ts";
import { now, round, sleep, summarize, type Summary } from "../lib/stats.ts";
import { BenchTerminal, openSession } from "../lib/terminal.ts";

export interface BurstResult {
  learners: number;
  spread_s: number;
  pool_size: number;
  /** From the first request to the last learner's prompt. */
  all_ready_s: number | null;
  ready: number;
  failed: number;
  errors: string[];
  /** Each learner's own wait, from their request to their prompt. */
  per_learner: Summary;
}

/**
 * A class arrives: `learners` browsers ask for a terminal, evenly spread over `spreadMs`, while
 * the server has its default warm pool. Each waits (bounded) for its prompt.
 */
export async function burst(server: BenchServer, options: { learners: number; spreadMs: number; poolSize: number; timeoutMs: number }): Promise<BurstResult> {
  if (options.poolSize > 0) await waitForPool(server.url, options.poolSize);
  const t0 = now();
  const errors: string[] = [];
  const terminals: BenchTerminal[] = [];
  const waits = await Promise.all(
    Array.from({ length: options.learners }, async (_, i) => {
      await sleep((i * options.spreadMs) / options.learners);
      const asked = now();
      try {
        const session = await openSession(server.url);
        const t = new BenchTerminal(session);
        terminals.push(t);
        await t.prompt(Math.max(1_000, options.timeoutMs - (asked - t0)));
        return { wait: now() - asked, at: now() - t0 };
      } catch (e) {
        errors.push(String(e).slice(0, 300));
        return undefined;
      }
    }),
  );
  for (const t of terminals) t.close();
  const ok = waits.filter((w): w is { wait: number; at: number } => w !== undefined);
  return {
    learners: options.learners,
    spread_s: options.spreadMs / 1000,
    pool_size: options.poolSize,
    all_ready_s: ok.length === options.learners ? round(Math.max(...ok.map((w) => w.at)) / 1000, 2) : null,
    ready: ok.length,
    failed: options.learners - ok.length,
    errors: [...new Set(errors)].slice(0, 5),
    per_learner: summarize(ok.map((w) => w.wait)),
  };
}
