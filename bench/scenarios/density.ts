import { containerMemoryMb, memAvailableMb } from "../lib/docker.ts";
import type { BenchServer } from "../lib/server.ts";
import { now, pool, round, sleep } from "../lib/stats.ts";
import { BenchTerminal, openSession, waitReady, type Session } from "../lib/terminal.ts";

export interface DensityResult {
  idle_sandboxes: number;
  cap: number;
  stopped_because: string;
  start_seconds: number;
  mem_available_before_mb: number;
  mem_available_after_mb: number;
  /** Host MemAvailable lost, divided by the number of sandboxes. */
  mb_per_sandbox: number;
  /** Mean of what each sandbox's cgroup charges (what `docker stats` shows). */
  cgroup_mb_per_sandbox: number | null;
  server_rss_idle_mb: number;
  /** Server RSS growth with 100 terminals attached (one per sandbox), and the time to get their prompts. */
  server_mb_per_100_terminals: number | null;
  terminals_attached: number;
  terminals_seconds: number | null;
  timeline: Array<{ t_s: number; sandboxes: number; mem_available_mb: number }>;
}

/**
 * Starts idle sandboxes (sessions with no terminal), `batch` at a time, until `cap`, the time
 * budget, less than `minAvailableMb` of host memory, or a failed start. Then attaches up to 100
 * terminals to measure the server's memory per terminal.
 */
export async function density(
  server: BenchServer,
  options: { cap: number; batch: number; budgetMs: number; minAvailableMb: number; log: (line: string) => void },
): Promise<DensityResult> {
  const before = memAvailableMb();
  const sessions: Session[] = [];
  const timeline: DensityResult["timeline"] = [];
  const t0 = now();
  let stoppedBecause = `reached the cap of ${options.cap}`;
  while (sessions.length < options.cap) {
    if (now() - t0 > options.budgetMs) {
      stoppedBecause = `time budget of ${options.budgetMs / 1000} s`;
      break;
    }
    if (memAvailableMb() < options.minAvailableMb) {
      stoppedBecause = `host memory available below ${options.minAvailableMb} MiB`;
      break;
    }
    const n = Math.min(options.batch, options.cap - sessions.length);
    const started = await Promise.allSettled(
      Array.from({ length: n }, async () => {
        const s = await openSession(server.url);
        await waitReady(s, 120_000);
        sessions.push(s);
      }),
    );
    const failed = started.filter((r) => r.status === "rejected");
    timeline.push({ t_s: round((now() - t0) / 1000), sandboxes: sessions.length, mem_available_mb: Math.round(memAvailableMb()) });
    if (sessions.length % 40 < options.batch) options.log(`  ${sessions.length} sandboxes, ${Math.round(memAvailableMb())} MiB available`);
    if (failed.length > 0) {
      stoppedBecause = `a start failed: ${String((failed[0] as PromiseRejectedResult).reason).slice(0, 200)}`;
      break;
    }
  }
  const startSeconds = (now() - t0) / 1000;
  // Let the inner engines settle before reading memory.
  await sleep(10_000);
  const after = memAvailableMb();
  const ready = sessions.length;
  const cgroup = sessions.map((s) => containerMemoryMb(server.sandboxOf(s.sessionId))).filter((m): m is number => m !== undefined);
  const rssIdle = server.rssMb();

  // 100 terminals, one per sandbox: what each attached terminal costs the server.
  const terminals: BenchTerminal[] = [];
  const t1 = now();
  const attached = await pool(sessions.slice(0, 100), 10, async (s) => {
    const t = new BenchTerminal(s);
    terminals.push(t);
    return t.prompt(60_000).then(
      () => true,
      () => false,
    );
  });
  const terminalsSeconds = (now() - t1) / 1000;
  await sleep(3_000);
  const rssTerminals = server.rssMb();
  const ok = attached.filter(Boolean).length;
  for (const t of terminals) t.close();

  return {
    idle_sandboxes: ready,
    cap: options.cap,
    stopped_because: stoppedBecause,
    start_seconds: round(startSeconds),
    mem_available_before_mb: Math.round(before),
    mem_available_after_mb: Math.round(after),
    mb_per_sandbox: round((before - after) / Math.max(1, ready)),
    cgroup_mb_per_sandbox: cgroup.length ? round(cgroup.reduce((a, b) => a + b, 0) / cgroup.length) : null,
    server_rss_idle_mb: round(rssIdle),
    server_mb_per_100_terminals: ok > 0 ? round(((rssTerminals - rssIdle) * 100) / ok) : null,
    terminals_attached: ok,
    terminals_seconds: ok > 0 ? round(terminalsSeconds) : null,
    timeline,
  };
}
