/**
 * `npm run bench`: every figure of docs/BENCHMARKS.md in one run on this machine (about 15 minutes).
 * Writes bench/results/latest.json and the table in docs/BENCHMARKS.md.
 *
 * Options: --quick (fewer runs, smaller loads: a smoke test of the bench itself),
 *          --only=click,echo,density,burst (a subset), --profile (CPU profile of the server during
 *          the echo and throughput runs, summarised into the results).
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, renameSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { envSchema } from "../sandbox-server/src/config.ts";
import { docker, memAvailableMb, removeBenchContainers } from "./lib/docker.ts";
import { ensurePeer, startWetty, WettyTerminal, wettyConnectToPrompt } from "./lib/peer.ts";
import { summarizeProfiles } from "./lib/profile.ts";
import { updateBenchmarksDoc } from "./lib/report.ts";
import { repoRoot, sandboxImage, withServer } from "./lib/server.ts";
import { pool, round, sleep, summarize } from "./lib/stats.ts";
import { BenchTerminal, openSession, waitReady } from "./lib/terminal.ts";
import { browserClickToPrompt, playgroundBuilt } from "./scenarios/browser.ts";
import { burst } from "./scenarios/burst.ts";
import { clickToPrompt, floorApi, floorCli } from "./scenarios/click-to-prompt.ts";
import { density } from "./scenarios/density.ts";
import { echoLoad } from "./scenarios/echo.ts";
import { throughput, throughputFloor } from "./scenarios/throughput.ts";

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const profile = args.includes("--profile");
const only = args.find((a) => a.startsWith("--only="))?.slice("--only=".length).split(",");
const wants = (phase: string) => !only || only.includes(phase);

/** The whole run stops starting new work after this; each phase is bounded on its own as well. */
const BUDGET_MS = 15 * 60_000;
const started = Date.now();
const left = () => BUDGET_MS - (Date.now() - started);

const N = {
  clickRuns: quick ? 5 : 25,
  browserRuns: quick ? 2 : 5,
  echoSandboxes: quick ? 2 : 10,
  echoTerminals: quick ? 6 : 50,
  echoSeconds: quick ? 4 : 20,
  echo1Seconds: quick ? 4 : 12,
  megabytes: quick ? 20 : 100,
  densityCap: quick ? 12 : 160,
  densityBudgetMs: quick ? 60_000 : 330_000,
  burstLearners: quick ? 10 : 50,
};
const WARM_POOL_FOR_CLICKS = 3;

const log = (line: string) => process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);

// ---- results ---------------------------------------------------------------------------------

const results: Record<string, unknown> & {
  clickToPrompt: Record<string, unknown>;
  echo: Record<string, unknown>;
  throughput: Record<string, unknown>;
  errors: Record<string, string>;
} = {
  date: new Date().toISOString(),
  command: `npm run bench${args.length ? " -- " + args.join(" ") : ""}`,
  machine: machine(),
  clickToPrompt: {},
  echo: {},
  throughput: {},
  errors: {},
};

function machine() {
  const dockerVersion = (() => {
    try {
      return execFileSync("docker", ["version", "--format", "{{.Server.Version}}"], { encoding: "utf8" }).trim();
    } catch {
      return "unknown";
    }
  })();
  return {
    cores: os.cpus().length,
    cpu: os.cpus()[0]?.model ?? "unknown",
    memory_gib: round(os.totalmem() / 1024 ** 3),
    kernel: os.release(),
    docker: dockerVersion,
    node: process.version,
    sandbox_image: sandboxImage(),
    load_average_at_start: os.loadavg().map((l) => round(l, 2)),
  };
}

/** Runs a phase; a failure is recorded and the next phase still runs. Skipped when the budget is spent. */
async function phase(name: string, estimateMs: number, fn: () => Promise<void>): Promise<void> {
  if (!wants(name)) return;
  if (left() < estimateMs) {
    results.errors[name] = `skipped: ${Math.round(left() / 1000)} s of the budget left, the phase needs about ${estimateMs / 1000} s`;
    log(results.errors[name]);
    return;
  }
  log(`${name}: start (load average ${os.loadavg()[0]!.toFixed(2)})`);
  try {
    await fn();
  } catch (e) {
    results.errors[name] = e instanceof Error ? e.message.slice(0, 1000) : String(e);
    log(`${name}: FAILED ${results.errors[name]}`);
  }
}

// ---- phases ----------------------------------------------------------------------------------

/** 1. Click to prompt: warm (pool hits), the floor in the same sandboxes, Chromium, then cold. */
async function clickPhase(): Promise<void> {
  const floorsApi: number[] = [];
  const floorsCli: number[] = [];
  await withServer({ SHIPSHAPE_WARM_POOL: String(WARM_POOL_FOR_CLICKS) }, async (server) => {
    const warm = await clickToPrompt(server, {
      runs: N.clickRuns,
      poolSize: WARM_POOL_FOR_CLICKS,
      afterEach: async (sandboxId) => {
        floorsApi.push(await floorApi(sandboxId));
        floorsCli.push(await floorCli(sandboxId));
      },
    });
    results.clickToPrompt.warm = { ...warm, pool_size: WARM_POOL_FOR_CLICKS };
    results.clickToPrompt.floor = { ...summarize(floorsApi), how: "engine API: exec create + start of `bash` with a TTY in the same sandbox, to its prompt" };
    results.clickToPrompt.floor_cli = { ...summarize(floorsCli), how: "`docker exec -it <sandbox> bash` under `script` (a pty), to its prompt" };
    log(`  warm p50 ${warm.p50_ms} ms, p95 ${warm.p95_ms} ms; floor p50 ${summarize(floorsApi).p50_ms} ms (CLI ${summarize(floorsCli).p50_ms} ms)`);
    if (playgroundBuilt()) {
      try {
        const b = await browserClickToPrompt(server, { runs: N.browserRuns, poolSize: WARM_POOL_FOR_CLICKS });
        results.clickToPrompt.browser = b;
        log(`  Chromium: POST to prompt p50 ${b.click_to_prompt.p50_ms} ms; navigation to prompt p50 ${b.navigation_to_prompt.p50_ms} ms`);
      } catch (e) {
        results.errors.browser = e instanceof Error ? e.message.slice(0, 1000) : String(e);
        log(`  Chromium run failed: ${results.errors.browser}`);
      }
    } else {
      results.errors.browser = "skipped: dist/playground/index.html is missing (run npm run build)";
    }
  });
  await withServer({ SHIPSHAPE_WARM_POOL: "0" }, async (server) => {
    const cold = await clickToPrompt(server, { runs: N.clickRuns, poolSize: 0 });
    results.clickToPrompt.cold = cold;
    log(`  cold p50 ${cold.p50_ms} ms, p95 ${cold.p95_ms} ms`);
  });
}

/** 2 and 3. Keystroke echo (1 and 50 terminals) and output throughput: ours, the floor, and the peer. */
async function echoPhase(): Promise<void> {
  const profileDir = profile ? mkdtempSync(path.join(os.tmpdir(), "shipshape-bench-prof-")) : undefined;
  const nodeArgs = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [];
  const peerInfo = await ensurePeer(log).catch((e: unknown) => {
    results.errors.peer = `the peer could not be installed: ${String(e).slice(0, 500)}`;
    return undefined;
  });
  await withServer(
    { SHIPSHAPE_WARM_POOL: "0" },
    async (server) => {
      const sessions = await pool(Array.from({ length: N.echoSandboxes }), 5, async () => {
        const s = await openSession(server.url);
        await waitReady(s, 120_000);
        return s;
      });
      const sandboxIds = sessions.map((s) => server.sandboxOf(s.sessionId));
      const settle = () => sleep(500);

      // Ours: one terminal alone, then 50 across the sandboxes.
      const one = new BenchTerminal(sessions[0]!, { terminal: "e0" });
      await one.prompt();
      await settle();
      results.echo.t1 = await echoLoad([one], { keysPerSecond: 25, durationMs: N.echo1Seconds * 1000 });
      const many = [one];
      for (let i = 1; i < N.echoTerminals; i++) many.push(new BenchTerminal(sessions[i % sessions.length]!, { terminal: `e${Math.floor(i / sessions.length)}` }));
      await Promise.all(many.map((t) => t.prompt(60_000)));
      await settle();
      const rssBefore = server.rssMb();
      results.echo.t50 = { ...(await echoLoad(many, { keysPerSecond: 10, durationMs: N.echoSeconds * 1000 })), server_rss_mb: round(server.rssMb()), server_rss_before_mb: round(rssBefore) };
      for (const t of many) t.close();
      log(`  echo t1 p50 ${(results.echo.t1 as { p50_ms: number }).p50_ms} ms p99 ${(results.echo.t1 as { p99_ms: number }).p99_ms} ms; t${N.echoTerminals} p99 ${(results.echo.t50 as { p99_ms: number }).p99_ms} ms`);

      // Throughput: ours with flow control, then the engine's own TTY exec as the floor.
      const tp = new BenchTerminal(sessions[0]!, { terminal: "tp" });
      await tp.prompt();
      const ours = await throughput(tp, server.pid, { megabytes: N.megabytes, timeoutMs: 120_000 });
      tp.close();
      const floor = await throughputFloor(sandboxIds[0]!, { megabytes: N.megabytes, timeoutMs: 120_000 });
      Object.assign(results.throughput, {
        megabytes: N.megabytes,
        mb_per_s: ours.mb_per_s,
        seconds: ours.seconds,
        bytes: ours.bytes,
        completed: ours.completed,
        server_start_rss_mb: ours.rss_start_mb,
        server_peak_rss_mb: ours.rss_peak_mb,
        floor_mb_per_s: floor.mb_per_s,
      });
      log(`  throughput ${ours.mb_per_s} MB/s (floor ${floor.mb_per_s} MB/s), server RSS ${ours.rss_start_mb} -> peak ${ours.rss_peak_mb} MiB`);

      // The peer, on the same sandboxes.
      if (!peerInfo) return;
      results.echo.peer = peerInfo;
      const wetty = await startWetty(sandboxIds);
      const peerTerminals: WettyTerminal[] = [];
      try {
        const connect = [] as number[];
        for (let i = 0; i < 3; i++) connect.push(await wettyConnectToPrompt(wetty.url));
        results.clickToPrompt.peer_connect = { ...summarize(connect), how: "WeTTY: socket.io connect to the prompt of a new `docker exec -it` shell (no sandbox start)" };
        const p1 = new WettyTerminal(wetty.url);
        peerTerminals.push(p1);
        await p1.prompt();
        await settle();
        results.echo.peer1 = await echoLoad([p1], { keysPerSecond: 25, durationMs: N.echo1Seconds * 1000 });
        for (let i = 1; i < N.echoTerminals; i++) peerTerminals.push(new WettyTerminal(wetty.url));
        await Promise.all(peerTerminals.map((t) => t.prompt(60_000)));
        await settle();
        results.echo.peer50 = { ...(await echoLoad(peerTerminals, { keysPerSecond: 10, durationMs: N.echoSeconds * 1000 })), peer_rss_mb: round(wetty.rssMb()) };
        for (const t of peerTerminals) t.close();
        log(`  peer echo t1 p99 ${(results.echo.peer1 as { p99_ms: number }).p99_ms} ms; t${N.echoTerminals} p99 ${(results.echo.peer50 as { p99_ms: number }).p99_ms} ms`);
        await sleep(1_000);
        const ptp = new WettyTerminal(wetty.url);
        peerTerminals.push(ptp);
        await ptp.prompt();
        const peer = await throughput(ptp, wetty.pid, { megabytes: N.megabytes, timeoutMs: 120_000 });
        Object.assign(results.throughput, {
          peer_mb_per_s: peer.mb_per_s,
          peer_completed: peer.completed,
          peer_start_rss_mb: peer.rss_start_mb,
          peer_peak_rss_mb: peer.rss_peak_mb,
        });
        log(`  peer throughput ${peer.mb_per_s} MB/s, RSS ${peer.rss_start_mb} -> peak ${peer.rss_peak_mb} MiB`);
      } finally {
        for (const t of peerTerminals) t.close();
        await wetty.stop();
      }
    },
    nodeArgs,
  );
  if (profileDir) results.profile = { during: "echo (1 and 50 terminals) and throughput", ...summarizeProfiles(profileDir, 25) };
}

/** 4. Density: idle sandboxes at once, memory per sandbox, server memory per 100 terminals. */
async function densityPhase(): Promise<void> {
  await withServer({ SHIPSHAPE_WARM_POOL: "0" }, async (server) => {
    results.density = await density(server, { cap: N.densityCap, batch: 8, budgetMs: N.densityBudgetMs, minAvailableMb: 2048, log });
  });
  const d = results.density as { idle_sandboxes: number; mb_per_sandbox: number; server_mb_per_100_terminals: number | null };
  log(`  ${d.idle_sandboxes} idle sandboxes, ${d.mb_per_sandbox} MiB each; server +${d.server_mb_per_100_terminals} MiB per 100 terminals`);
}

/** 5. A class arrives: 50 learners within 5 s, the server's default warm pool. */
async function burstPhase(): Promise<void> {
  const poolSize = envSchema.parse({}).SHIPSHAPE_WARM_POOL;
  await withServer({}, async (server) => {
    const r = await burst(server, { learners: N.burstLearners, spreadMs: 5_000, poolSize, timeoutMs: 180_000 });
    results.burst50 = r;
    log(`  ${r.ready}/${r.learners} prompts; all ready after ${r.all_ready_s} s (per learner p50 ${r.per_learner.p50_ms} ms)`);
  });
}

// ---- main --------------------------------------------------------------------------------------

let cleaningUp = false;
async function cleanup(): Promise<void> {
  if (cleaningUp) return;
  cleaningUp = true;
  const removed = await removeBenchContainers();
  if (removed) log(`removed ${removed} leftover bench containers`);
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    log(`${signal}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function main(): Promise<void> {
  log(`machine: ${results.machine ? JSON.stringify(results.machine) : ""}`);
  await cleanup();
  cleaningUp = false;
  const memBefore = memAvailableMb();
  try {
    await phase("click", 240_000, clickPhase);
    await phase("echo", 240_000, echoPhase);
    await phase("density", 300_000, densityPhase);
    await phase("burst", 120_000, burstPhase);
  } finally {
    await cleanup();
  }
  const leftovers = (await docker(["ps", "-aq", "--filter", "label=org.shipshape.namespace=bench"]).catch(() => "")).trim();
  Object.assign(results, {
    duration_s: Math.round((Date.now() - started) / 1000),
    load_average_at_end: os.loadavg().map((l) => round(l, 2)),
    mem_available_recovered_mb: Math.round(memAvailableMb() - memBefore),
    leftover_containers: leftovers ? leftovers.split("\n").length : 0,
  });
  const dir = path.join(repoRoot, "bench", "results");
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, quick || only ? "partial.json" : "latest.json");
  writeFileSync(`${file}.tmp`, JSON.stringify(results, null, 2) + "\n");
  renameSync(`${file}.tmp`, file);
  log(`wrote ${path.relative(repoRoot, file)}`);
  if (!quick && !only) {
    updateBenchmarksDoc(results);
    log("updated docs/BENCHMARKS.md");
  }
  log(`done in ${results.duration_s as number} s`);
}

await main();
