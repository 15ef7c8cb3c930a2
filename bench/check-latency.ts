/**
 * How long a Check takes, end to end through the Grader (probe start, engine verification, the
 * checks, the answer): one learner pressing Check again and again, then a class of learners
 * pressing it at once. Run: node bench/check-latency.ts [sequential runs] [class size]
 */
import path from "node:path";
import { loadExercises } from "../sandbox-server/src/content/exercise-loader.ts";
import { Grader } from "../sandbox-server/src/grading/grader.ts";
import { silentLogger } from "../sandbox-server/src/log.ts";
import { DockerRuntime } from "../sandbox-server/src/runtime/docker-runtime.ts";
import { NAMESPACE, repoRoot, sandboxImage } from "./lib/server.ts";

const runs = Number(process.argv[2] ?? 8);
const classSize = Number(process.argv[3] ?? 6);
const exercise = loadExercises(path.join(repoRoot, "content", "exercises")).get("run-and-stop")!;
const runtime = new DockerRuntime({
  image: sandboxImage(),
  network: process.env.SHIPSHAPE_SANDBOX_NETWORK ?? "shipshape-sandboxes",
  namespace: NAMESPACE,
  runtime: "",
  log: silentLogger,
});
const freshSandbox = (name: string) =>
  runtime.create({
    sessionId: `${name}-${Math.random().toString(36).slice(2, 8)}`,
    ownerId: "bench",
    expiresAt: Date.now() + 30 * 60_000,
    limits: { memoryBytes: 1024 ** 3, cpus: 1, pids: 1024, diskBytes: 4 * 1024 ** 3 },
  });
const grader = new Grader({ runtime, log: silentLogger, maxProbes: 4 });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const sandboxes = await Promise.all(Array.from({ length: classSize }, (_, i) => freshSandbox(`bench-check-${i}`)));
try {
  await Promise.all(
    sandboxes.map((s) => runtime.exec(s.id, ["sh", "-c", "docker run -d --name web nginx >/dev/null && docker stop web >/dev/null && docker run hello-world >/dev/null"], { timeoutMs: 180_000 })),
  );
  const one: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    const r = await grader.grade(exercise, sandboxes[0]!.id);
    if (!r.passed) throw new Error(`honest work failed: ${JSON.stringify(r.tasks)}`);
    one.push(performance.now() - t);
  }
  const t = performance.now();
  const all = await Promise.all(
    sandboxes.map(async (s) => {
      const started = performance.now();
      const r = await grader.grade(exercise, s.id);
      if (!r.passed) throw new Error(`honest work failed: ${JSON.stringify(r.tasks)}`);
      return performance.now() - started;
    }),
  );
  const wall = performance.now() - t;
  console.log(
    JSON.stringify({
      sequentialMs: { median: Math.round(median(one)), all: one.map(Math.round) },
      classAtOnce: { learners: classSize, maxProbes: 4, wallMs: Math.round(wall), medianMs: Math.round(median(all)), slowestMs: Math.round(Math.max(...all)) },
      loadavg: (await import("node:os")).loadavg().map((x) => x.toFixed(1)),
    }),
  );
} finally {
  await Promise.all(sandboxes.map((s) => runtime.destroy(s.id)));
  await runtime.close();
}
