/**
 * `npm run bench`: every figure of docs/BENCHMARKS.md in one run on this machine (about 15 minutes).
 * Writes bench/results/latest.json and the table in docs/BENCHMARKS.md.
 *
 * Options: --quick (fewer runs, smaller loads: a smoke test of the bench itself),
 *          --only=click,echo,density,burst,checks (a subset), --profile (CPU profile of the server during
 *          the echo and throughput runs, summarised into the results).
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { envSchema } from "../sandbox-server/src/config.ts";
import { docker, memAvailableMb, removeBenchContainers } from "./lib/docker.ts";
import { FloorTerminal } from "./lib/floor.ts";
import { ensurePeer, startWetty, WettyTerminal, wettyConnectToPrompt } from "./lib/peer.ts";
import { summarizeProfiles } from "./lib/profile.ts";
import { updateBenchmarksDoc } from "./lib/report.ts";
import { repoRoot, sandboxImage, stopAll, withServer } from "./lib/server.ts";
import { pool, round, sleep, summarize } from "./lib/stats.ts";
import { BenchTerminal, endSession, openSession, waitReady } from "./lib/terminal.ts";
import { browserClickToPrompt, playgroundBuilt } from "./scenarios/browser.ts";
import { burst } from "./scenarios/burst.ts";
import { checks } from "./scenarios/checks.ts";
import { clickToPrompt, floorApi, floorCli } from "./scenarios/click-to-prompt.ts";
import { density } from "./scenarios/density.ts";
import { sandboxPanel } from "./scenarios/sandbox-panel.ts";
import { echoResult, echoRound, type EchoResult, type EchoSamples, type EchoTerminal } from "./scenarios/echo.ts";
import { throughput, throughputFloor, type ThroughputResult } from "./scenarios/throughput.ts";

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const profile = args.includes("--profile");
const only = args.find((a) => a.startsWith("--only="))?.slice("--only=".length).split(",");
const wants = (phase: string) => !only || only.includes(phase);

/** The whole run stops starting new work after this; each phase is bounded on its own as well. */
const BUDGET_MS = 20 * 60_000;
const started = Date.now();
const left = () => BUDGET_MS - (Date.now() - started);

const N = {
  clickRuns: quick ? 5 : 20,
  browserRuns: quick ? 2 : 5,
  echoSandboxes: quick ? 2 : 10,
  echoTerminals: quick ? 6 : 50,
  echoSeconds: quick ? 4 : 20,
  echo1Seconds: quick ? 4 : 12,
  megabytes: quick ? 20 : 60,
  densityCap: quick ? 12 : 160,
  densityBudgetMs: quick ? 60_000 : 270_000,
  burstLearners: quick ? 10 : 50,
  checkLearners: quick ? 10 : 50,
  panelSandboxes: quick ? 3 : 10,
  panelSeconds: quick ? 5 : 30,
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
  phases: {},
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
    cpu_pressure_at_start: cpuPressure(),
  };
}

/** Share of the last 60 s in which some runnable task waited for a CPU (Linux PSI), in %: how busy the machine was. */
function cpuPressure(): number | null {
  try {
    const m = /^some avg10=[\d.]+ avg60=([\d.]+)/m.exec(readFileSync("/proc/pressure/cpu", "utf8"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Runs a phase; a failure is recorded and the next phase still runs. Skipped when the budget is spent. */
async function phase(name: string, estimateMs: number, fn: () => Promise<void>): Promise<void> {
  if (!wants(name)) return;
  if (left() < estimateMs) {
    results.errors[name] = `skipped: ${Math.round(left() / 1000)} s of the budget left, the phase needs about ${estimateMs / 1000} s`;
    log(results.errors[name]);
    return;
  }
  log(`${name}: start (load average ${os.loadavg()[0]!.toFixed(2)}, CPU pressure ${cpuPressure()} %)`);
  (results.phases as Record<string, unknown>)[name] = { load_average_at_start: round(os.loadavg()[0]!, 2), cpu_pressure_at_start: cpuPressure() };
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
        // The headline key the issue names (#18), beside the full record.
        results.browser = { nav_to_prompt: b.navigation_to_prompt };
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

/** 2 and 3. Keystroke echo (1 and 50 terminals) and output throughput: ours, the floor and the peer, in interleaved rounds. */
async function echoPhase(): Promise<void> {
  const profileDir = profile ? mkdtempSync(path.join(os.tmpdir(), "shipshape-bench-prof-")) : undefined;
  const nodeArgs = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [];
  const peerInfo = await ensurePeer(log).catch((e: unknown) => {
    results.errors.peer = `the peer could not be installed: ${String(e).slice(0, 500)}`;
    return undefined;
  });
  if (peerInfo) results.peer = peerInfo;
  await withServer(
    { SHIPSHAPE_WARM_POOL: "0" },
    async (server) => {
      const sessions = await pool(Array.from({ length: N.echoSandboxes }), 5, async () => {
        const s = await openSession(server.url);
        await waitReady(s, 120_000);
        return s;
      });
      const sandboxIds = sessions.map((s) => server.sandboxOf(s.sessionId));
      const wetty = peerInfo ? await startWetty(sandboxIds) : undefined;
      const all: Array<{ close(): void }> = [];
      try {
        if (wetty) {
          const connect: number[] = [];
          for (let i = 0; i < 3; i++) connect.push(await wettyConnectToPrompt(wetty.url));
          results.clickToPrompt.peer_connect = { ...summarize(connect), how: "WeTTY: socket.io connect to the prompt of a new `docker exec -it` shell (no sandbox start)" };
        }
        // The same number of shells for each, spread over the same sandboxes (terminal i in sandbox i mod n).
        const ours = Array.from({ length: N.echoTerminals }, (_, i) =>
          new BenchTerminal(sessions[i % sessions.length]!, { terminal: `e${Math.floor(i / sessions.length)}` }),
        );
        const floor = await pool(Array.from({ length: N.echoTerminals }), 10, (_, i) => FloorTerminal.open(sandboxIds[i % sandboxIds.length]!));
        const peer = wetty ? Array.from({ length: N.echoTerminals }, () => new WettyTerminal(wetty.url)) : [];
        all.push(...ours, ...floor, ...peer);
        await Promise.all([...ours, ...floor, ...peer].map((t) => t.prompt(60_000)));
        await sleep(1_000);
        const variants = [
          { key: "t", terms: ours as EchoTerminal[], pid: server.pid as number | undefined },
          { key: "floor", terms: floor as EchoTerminal[], pid: undefined },
          ...(wetty ? [{ key: "peer", terms: peer as EchoTerminal[], pid: wetty.pid as number | undefined }] : []),
        ];
        const ROUNDS = 4;
        for (const [count, keysPerSecond, seconds] of [[1, 25, N.echo1Seconds], [N.echoTerminals, 10, N.echoSeconds]] as const) {
          const acc = new Map(variants.map((v) => [v.key, { samples: [], lost: 0, cpuMs: 0 } as EchoSamples]));
          for (let r = 0; r < ROUNDS; r++) {
            for (const v of variants) {
              await echoRound(v.terms.slice(0, count), { keysPerSecond, durationMs: (seconds * 1000) / ROUNDS, pid: v.pid }, acc.get(v.key));
            }
          }
          const label = count === 1 ? "1" : "50";
          for (const v of variants) results.echo[`${v.key}${label}`] = echoResult(acc.get(v.key)!, count, keysPerSecond, v.pid !== undefined);
          const p99 = (k: string) => (results.echo[`${k}${label}`] as EchoResult | undefined)?.p99_ms;
          log(`  echo, ${count} terminal(s): p99 ours ${p99("t")} ms, floor ${p99("floor")} ms, peer ${p99("peer")} ms`);
        }
        results.echo.server_rss_mb_with_terminals = round(server.rssMb());
        for (const t of all.splice(0)) t.close();

        // Throughput, interleaved: ours (flow control on), the floor (engine exec read straight), the peer.
        const tpOurs = new BenchTerminal(sessions[0]!, { terminal: "tp" });
        const tpPeer = wetty ? new WettyTerminal(wetty.url) : undefined;
        all.push(tpOurs, ...(tpPeer ? [tpPeer] : []));
        await Promise.all([tpOurs.prompt(), tpPeer?.prompt()]);
        const runs: Record<string, ThroughputResult[]> = { ours: [], peer: [] };
        const floors: Array<{ bytes: number; seconds: number }> = [];
        for (let r = 0; r < 2; r++) {
          runs.ours!.push(await throughput(tpOurs, server.pid, { megabytes: N.megabytes, timeoutMs: 120_000 }));
          floors.push(await throughputFloor(sandboxIds[0]!, { megabytes: N.megabytes, timeoutMs: 120_000 }));
          if (tpPeer && wetty) runs.peer!.push(await throughput(tpPeer, wetty.pid, { megabytes: N.megabytes, timeoutMs: 120_000 }));
        }
        const rate = (rs: Array<{ bytes: number; seconds: number }>) => round(rs.reduce((a, b) => a + b.bytes, 0) / 1e6 / rs.reduce((a, b) => a + b.seconds, 0));
        const o = runs.ours!;
        Object.assign(results.throughput, {
          megabytes: N.megabytes,
          runs: o.length,
          mb_per_s: rate(o),
          runs_mb_per_s: o.map((r) => r.mb_per_s),
          completed: o.every((r) => r.completed),
          server_start_rss_mb: Math.min(...o.map((r) => r.rss_start_mb)),
          server_peak_rss_mb: Math.max(...o.map((r) => r.rss_peak_mb)),
          server_cpu_ms_per_mb: round(o.reduce((a, r) => a + r.cpu_ms_per_mb, 0) / o.length),
          floor_mb_per_s: rate(floors),
          floor_runs_mb_per_s: floors.map((f) => round(f.bytes / 1e6 / f.seconds)),
        });
        if (runs.peer!.length) {
          const p = runs.peer!;
          Object.assign(results.throughput, {
            peer_mb_per_s: rate(p),
            peer_runs_mb_per_s: p.map((r) => r.mb_per_s),
            peer_completed: p.every((r) => r.completed),
            peer_start_rss_mb: Math.min(...p.map((r) => r.rss_start_mb)),
            peer_peak_rss_mb: Math.max(...p.map((r) => r.rss_peak_mb)),
            peer_cpu_ms_per_mb: round(p.reduce((a, r) => a + r.cpu_ms_per_mb, 0) / p.length),
          });
        }
        const t = results.throughput as Record<string, number>;
        log(`  throughput ${t.mb_per_s} MB/s (floor ${t.floor_mb_per_s}, peer ${t.peer_mb_per_s}); server RSS ${t.server_start_rss_mb} -> peak ${t.server_peak_rss_mb} MiB, ${t.server_cpu_ms_per_mb} ms CPU per MB`);
      } finally {
        for (const t of all) t.close();
        await wetty?.stop();
      }
    },
    nodeArgs,
  );
  if (profileDir) results.profile = { during: "echo (1 and 50 terminals) and throughput", ...summarizeProfiles(profileDir, 25) };
}

/** 4. Density: idle sandboxes at once, memory per sandbox, server memory per 100 terminals. */
async function densityPhase(): Promise<void> {
  // Every sandbox comes from this one address: lift the per-address limit on new sandboxes for this test.
  await withServer({ SHIPSHAPE_WARM_POOL: "0", SHIPSHAPE_SESSIONS_PER_ADDRESS_PER_MINUTE: "100000" }, async (server) => {
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
    // Headline keys (issue 18): each learner's wait, beside the full record.
    results.burst50 = { ...r, p50_ms: r.per_learner.p50_ms, p95_ms: r.per_learner.p95_ms, max_ms: r.per_learner.max_ms };
    log(`  ${r.ready}/${r.learners} prompts; all ready after ${r.all_ready_s} s (per learner p50 ${r.per_learner.p50_ms} ms)`);
  });
}

/** 5b. A class presses Check: 50 learners who did the work, one press each within 5 s. */
async function checksPhase(): Promise<void> {
  await withServer(
    // The bench's own exercise (bench/content); sandboxes started ahead, as for a class mid-lesson.
    { SHIPSHAPE_WARM_POOL: "0", SHIPSHAPE_SESSIONS_PER_ADDRESS_PER_MINUTE: "100000", SHIPSHAPE_CONTENT_DIR: path.join(repoRoot, "bench", "content") },
    async (server) => {
      const r = await checks(server, { learners: N.checkLearners, spreadMs: 5_000, timeoutMs: 120_000, log });
      results.checks50 = { ...r, p50_ms: r.per_check.p50_ms, p95_ms: r.per_check.p95_ms, max_ms: r.per_check.max_ms };
      log(`  ${r.passed}/${r.learners} checks passed; press to verdict p50 ${r.per_check.p50_ms} ms, p95 ${r.per_check.p95_ms} ms, max ${r.per_check.max_ms} ms`);
    },
  );
}

/** 6. The sandbox panel: server CPU and memory per watched sandbox, idle and with an event a second. */
async function panelPhase(): Promise<void> {
  await withServer({ SHIPSHAPE_WARM_POOL: "0", SHIPSHAPE_SESSIONS_PER_ADDRESS_PER_MINUTE: "100000" }, async (server) => {
    const sessions = await pool(Array.from({ length: N.panelSandboxes }), 3, () => openSession(server.url));
    await pool(sessions, 3, (s) => waitReady(s, 300_000));
    const r = await sandboxPanel(server, sessions, { seconds: N.panelSeconds, log });
    results.sandboxPanel = r;
    log(`  per watched sandbox: ${r.watched_idle.cpu_percent_per_sandbox} % CPU idle, ${r.watched_event_per_s.cpu_percent_per_sandbox} % with an event a second; ${r.rss_mb_per_watched_sandbox} MiB`);
    await Promise.all(sessions.map((s) => endSession(s)));
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
    log(`${signal}: stopping the servers and cleaning up`);
    void stopAll()
      .then(cleanup)
      .finally(() => process.exit(130));
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
    await phase("checks", 240_000, checksPhase);
    await phase("panel", 180_000, panelPhase);
  } finally {
    await cleanup();
  }
  const leftovers = (await docker(["ps", "-aq", "--filter", "label=org.shipshape.namespace=bench"]).catch(() => "")).trim();
  Object.assign(results, {
    duration_s: Math.round((Date.now() - started) / 1000),
    load_average_at_end: os.loadavg().map((l) => round(l, 2)),
    cpu_pressure_at_end: cpuPressure(),
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
