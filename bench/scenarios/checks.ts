import { type BenchServer } from "../lib/server.ts";
import { now, pool, round, sleep, summarize, type Summary } from "../lib/stats.ts";
import { BenchTerminal, openSession, waitReady, type Session } from "../lib/terminal.ts";

export const CHECK_EXERCISE = "bench-check";

export interface ChecksResult {
  learners: number;
  spread_s: number;
  /** Checks answered 200 with every task passed (honest work must pass). */
  passed: number;
  failed: number;
  errors: string[];
  /** Each learner's press → verdict. */
  per_check: Summary;
  /** First press → last verdict. */
  all_answered_s: number | null;
}

/**
 * A class presses Check: `learners` learners, each in a sandbox of their own in which they did
 * the exercise's work (`docker run busybox echo …`, typed in their terminal), press Check once,
 * evenly spread over `spreadMs`. Their sandboxes are started and their work done first, and the
 * machine is let to settle, so the figure is the checks' own.
 */
export async function checks(
  server: BenchServer,
  options: { learners: number; spreadMs: number; timeoutMs: number; log: (line: string) => void },
): Promise<ChecksResult> {
  const sessions = await pool(Array.from({ length: options.learners }), 8, async () => {
    const s = await openSession(server.url);
    await waitReady(s, 300_000);
    return s;
  });
  options.log(`  ${sessions.length} sandboxes ready; each learner does the work`);
  await pool(sessions, 8, async (s) => {
    const t = new BenchTerminal(s);
    try {
      await t.prompt(120_000);
      t.type("docker run busybox echo hello from the bench; echo work-$((40+2))\r");
      await t.until(() => t.tail.includes("work-42"), 180_000, "the learner's work");
    } finally {
      t.close();
    }
  });
  await sleep(5_000);
  const t0 = now();
  const errors: string[] = [];
  const results = await Promise.all(
    sessions.map(async (s: Session, i) => {
      await sleep((i * options.spreadMs) / options.learners);
      const pressed = now();
      try {
        const res = await fetch(`${server.url}/api/exercises/${CHECK_EXERCISE}/check`, {
          method: "POST",
          headers: { origin: server.url, cookie: s.cookie, "content-type": "application/json" },
          signal: AbortSignal.timeout(options.timeoutMs),
        });
        const body = (await res.json()) as { passed?: boolean; tasks?: Array<{ message?: string }> };
        if (res.status !== 200 || !body.passed) throw new Error(`check answered ${res.status}: ${JSON.stringify(body).slice(0, 300)}`);
        return { ms: now() - pressed, at: now() - t0 };
      } catch (e) {
        errors.push(String(e).slice(0, 300));
        return undefined;
      }
    }),
  );
  const ok = results.filter((r): r is { ms: number; at: number } => r !== undefined);
  return {
    learners: options.learners,
    spread_s: options.spreadMs / 1000,
    passed: ok.length,
    failed: options.learners - ok.length,
    errors: [...new Set(errors)].slice(0, 5),
    per_check: summarize(ok.map((r) => r.ms)),
    all_answered_s: ok.length ? round(Math.max(...ok.map((r) => r.at)) / 1000, 2) : null,
  };
}
