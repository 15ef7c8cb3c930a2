/**
 * Click to prompt on each tier, straight on the runtimes (no server, no browser): "cold" is create a
 * sandbox + open its shell until the prompt shows; "warm" is opening a shell in a sandbox that is
 * already running (what the warm pool gives a learner); "exec" is one `true`.
 *     npm run bench:tiers -- [rounds, default 5] [tiers, default classroom,isolated]
 * Sequential on purpose: it measures one learner's wait, not a burst (bench/run.ts does bursts).
 * Writes bench/results/tier-prompt.json with the machine's load, since a shared machine's figures
 * mean little without it.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { DockerRuntime } from "../sandbox-server/src/runtime/docker-runtime.ts";
import { LxdRuntime } from "../sandbox-server/src/runtime/lxd-runtime.ts";
import type { SandboxRuntime } from "../sandbox-server/src/runtime/types.ts";
import { silentLogger } from "../sandbox-server/src/log.ts";

const root = path.resolve(import.meta.dirname, "..");
const data = (f: string) => readFileSync(path.join(root, ".data", f), "utf8").trim();
const rounds = Number(process.argv[2] ?? 5);
const tiers = (process.argv[3] ?? "classroom,isolated").split(",");
const namespace = `bench${Math.random().toString(36).slice(2, 7)}`;

function runtimeFor(tier: string): SandboxRuntime {
  if (tier === "isolated") {
    if (!existsSync(path.join(root, ".data", "lxd-image"))) throw new Error("the isolated tier is not set up: SHIPSHAPE_TIER=isolated ./shipshape setup");
    return new LxdRuntime({ socketPath: process.env.SHIPSHAPE_LXD_SOCKET ?? "/var/lib/lxd/unix.socket", image: data("lxd-image"), network: "shipshape-lx0", pool: "shipshape", namespace, log: silentLogger });
  }
  return new DockerRuntime({ image: data("sandbox-image"), network: "shipshape-sandboxes", namespace, runtime: "", log: silentLogger });
}

async function prompt(runtime: SandboxRuntime, id: string, terminal: string): Promise<number> {
  const started = performance.now();
  const shell = await runtime.shell(id, { terminal, cols: 80, rows: 24 });
  let text = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no prompt within 20 s: ${JSON.stringify(text.slice(-200))}`)), 20_000);
    shell.stream.on("data", (d: Buffer) => {
      text += d.toString("utf8");
      if (/# $/.test(text)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const ms = performance.now() - started;
  shell.close();
  return ms;
}

const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const fmt = (xs: number[]) => `p50 ${p50(xs).toFixed(0)} ms (min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)})`;

const results: Record<string, Record<string, { p50: number; min: number; max: number }>> = {};
const stats = (xs: number[]) => ({ p50: Math.round(p50(xs)), min: Math.round(Math.min(...xs)), max: Math.round(Math.max(...xs)) });
const loadBefore = os.loadavg();

for (const tier of tiers) {
  const runtime = runtimeFor(tier);
  const cold: number[] = [];
  const warm: number[] = [];
  const exec: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const started = performance.now();
    const info = await runtime.create({
      sessionId: `p${i}${Math.random().toString(36).slice(2, 6)}`,
      ownerId: "bench",
      expiresAt: Date.now() + 600_000,
      limits: { memoryBytes: 1024 ** 3, cpus: 1, pids: 1024, diskBytes: 4 * 1024 ** 3 },
    });
    await prompt(runtime, info.id, "main");
    cold.push(performance.now() - started);
    warm.push(await prompt(runtime, info.id, "second"));
    const t = performance.now();
    await runtime.exec(info.id, ["true"]);
    exec.push(performance.now() - t);
    await runtime.destroy(info.id);
  }
  results[tier] = { cold: stats(cold), warm: stats(warm), exec: stats(exec) };
  console.log(`${tier.padEnd(9)} cold (create + prompt): ${fmt(cold)}; warm (prompt in a running sandbox): ${fmt(warm)}; exec true: ${fmt(exec)}`);
  await runtime.close();
}

mkdirSync(path.join(root, "bench", "results"), { recursive: true });
writeFileSync(
  path.join(root, "bench", "results", "tier-prompt.json"),
  JSON.stringify(
    {
      at: new Date().toISOString(),
      rounds,
      machine: { cpus: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 1024 ** 3), loadAverageBefore: loadBefore, loadAverageAfter: os.loadavg() },
      unit: "ms",
      tiers: results,
    },
    null,
    2,
  ) + "\n",
);
