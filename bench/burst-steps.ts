/**
 * Where a class's cold starts spend their time: `n` sandboxes asked for over `spread` ms straight
 * through the runtime (no server), each step timed from the request: container created, started,
 * handed out (port pinned), inner engine answering; at most `limit` starts at once (0: no limit).
 * Run: node bench/burst-steps.ts [n] [spread ms] [engineLater 0|1] [limit]
 */
import { silentLogger } from "../sandbox-server/src/log.ts";
import { DockerRuntime } from "../sandbox-server/src/runtime/docker-runtime.ts";
import { removeBenchContainers } from "./lib/docker.ts";
import { NAMESPACE, sandboxImage } from "./lib/server.ts";
import { summarize } from "./lib/stats.ts";

const n = Number(process.argv[2] ?? 20);
const spread = Number(process.argv[3] ?? 3000);
const engineLater = process.argv[4] !== "0";
const limit = Number(process.argv[5] ?? 0) || Number.POSITIVE_INFINITY;
let running = 0;
const queue: Array<() => void> = [];
const slot = async () => {
  if (running >= limit) await new Promise<void>((r) => queue.push(r));
  else running++;
  return () => {
    const next = queue.shift();
    if (next) next();
    else running--;
  };
};
const runtime = new DockerRuntime({ image: sandboxImage(), network: "shipshape-sandboxes", namespace: NAMESPACE, runtime: "", log: silentLogger });
await removeBenchContainers();
const t0 = performance.now();
const steps: Record<string, number[]> = { created: [], started: [], handed_out: [], engine: [] };
try {
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      await new Promise((r) => setTimeout(r, (i * spread) / n));
      const asked = performance.now();
      const release = await slot();
      const info = await runtime.create(
        { sessionId: `steps-${i}-${Math.random().toString(36).slice(2, 6)}`, ownerId: "bench", expiresAt: Date.now() + 600_000, limits: { memoryBytes: 1024 ** 3, cpus: 1, pids: 1024, diskBytes: 4 * 1024 ** 3 }, engineLater },
        (p) => {
          if (p.step === "Starting the container") steps.created!.push(performance.now() - asked);
          if (p.step === "Starting its Docker engine" && p.progress === 0.5) steps.started!.push(performance.now() - asked);
        },
      );
      steps.handed_out!.push(performance.now() - asked);
      release();
      await runtime.engineReady(info.id);
      steps.engine!.push(performance.now() - asked);
    }),
  );
  console.log(JSON.stringify({ n, spread, engineLater, limit, wall_s: Math.round(performance.now() - t0) / 1000, ...Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, { p50: summarize(v).p50_ms, max: summarize(v).max_ms }])) }));
} finally {
  await removeBenchContainers();
  await runtime.close();
}
