/**
 * `npm run bench:panel`: the sandbox panel's cost on the server alone (bench/scenarios/sandbox-panel.ts),
 * without the rest of the bench. Writes bench/results/sandbox-panel.json; the figures are copied
 * into docs/BENCHMARKS.md by hand. Options: --sandboxes=N (default 10), --seconds=S (default 30).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { docker } from "./lib/docker.ts";
import { repoRoot, startServer } from "./lib/server.ts";
import { pool } from "./lib/stats.ts";
import { endSession, openSession, waitReady, type Session } from "./lib/terminal.ts";
import { sandboxPanel } from "./scenarios/sandbox-panel.ts";

const arg = (name: string, fallback: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const count = arg("sandboxes", 10);
const seconds = arg("seconds", 30);
// A namespace of its own: the clean-up below never touches another bench run's sandboxes.
const NAMESPACE = "benchpanel";
const log = (l: string) => process.stderr.write(`[bench:panel] ${l}\n`);

const server = await startServer({ SHIPSHAPE_NAMESPACE: NAMESPACE, SHIPSHAPE_WARM_POOL: "0", SHIPSHAPE_SESSIONS_PER_ADDRESS_PER_MINUTE: "100000" });
const sessions: Session[] = [];
try {
  log(`starting ${count} sandboxes`);
  sessions.push(...(await pool(Array.from({ length: count }), 3, async () => openSession(server.url))));
  await pool(sessions, 3, (s) => waitReady(s, 300_000));
  const result = await sandboxPanel(server, sessions, { seconds, log });
  const out = { date: new Date().toISOString(), command: `npm run bench:panel -- --sandboxes=${count} --seconds=${seconds}`, cores: os.cpus().length, load_average_at_end: os.loadavg()[0], ...result };
  mkdirSync(path.join(repoRoot, "bench/results"), { recursive: true });
  writeFileSync(path.join(repoRoot, "bench/results/sandbox-panel.json"), `${JSON.stringify(out, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
} finally {
  await Promise.all(sessions.map((s) => endSession(s)));
  await server.stop();
  const left = (await docker(["ps", "-aq", "--filter", `label=org.shipshape.namespace=${NAMESPACE}`]).catch(() => "")).split("\n").filter(Boolean);
  if (left.length) await docker(["rm", "-f", "-v", ...left]).catch(() => "");
}
