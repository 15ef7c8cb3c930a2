import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { repoRoot } from "./server.ts";

const DOC = path.join(repoRoot, "docs", "BENCHMARKS.md");
const START = "<!-- bench:results:start (written by npm run bench) -->";
const END = "<!-- bench:results:end -->";

/** A value at a dotted path of the results, or undefined. */
function at(results: unknown, dotted: string): unknown {
  let v: unknown = results;
  for (const key of dotted.split(".")) v = v && typeof v === "object" ? (v as Record<string, unknown>)[key] : undefined;
  return v;
}

const num = (results: unknown, dotted: string): number | undefined => {
  const v = at(results, dotted);
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
};

const fmt = (v: number | undefined, unit = "") => (v === undefined ? "–" : `${v}${unit}`);
const verdict = (ok: boolean | undefined) => (ok === undefined ? "not measured" : ok ? "**met**" : "**missed**");

/** The generated part of docs/BENCHMARKS.md: machine, date, command and the table of figures. */
export function renderResults(r: Record<string, unknown>): string {
  const m = (r.machine ?? {}) as Record<string, unknown>;
  const n = (p: string) => num(r, p);
  const pair = (a: string, b: string, unit: string) => `${fmt(n(a))} / ${fmt(n(b))} ${unit}`;
  const lt = (v: number | undefined, goal: number) => (v === undefined ? undefined : v <= goal);
  const gt = (v: number | undefined, goal: number) => (v === undefined ? undefined : v >= goal);
  const echoBetter = n("echo.t50.p99_ms") !== undefined && n("echo.peer50.p99_ms") !== undefined ? n("echo.t50.p99_ms")! < n("echo.peer50.p99_ms")! : undefined;
  const echoGoal = lt(n("echo.t50.p99_ms"), 15);

  const rows: string[][] = [
    ["**Click to prompt, warm** (pool hit): POST + WebSocket + hello → prompt, p50 / p95", pair("clickToPrompt.warm.p50_ms", "clickToPrompt.warm.p95_ms", "ms"), "≤ 150 / ≤ 300 ms",
      verdict(lt(n("clickToPrompt.warm.p50_ms"), 150) === undefined ? undefined : lt(n("clickToPrompt.warm.p50_ms"), 150)! && lt(n("clickToPrompt.warm.p95_ms"), 300)!)],
    ["↳ anchor: floor, engine exec of `bash` with a TTY in the same sandbox, p50 / p95", pair("clickToPrompt.floor.p50_ms", "clickToPrompt.floor.p95_ms", "ms"), "", ""],
    ["↳ anchor: `docker exec -it <sandbox> bash` from a shell (CLI in a pty), p50 / p95", pair("clickToPrompt.floor_cli.p50_ms", "clickToPrompt.floor_cli.p95_ms", "ms"), "", ""],
    ["↳ steps (p50, from the request): POST answered / socket open / `ready`", `${fmt(n("clickToPrompt.warm.steps_p50_ms.post"))} / ${fmt(n("clickToPrompt.warm.steps_p50_ms.open"))} / ${fmt(n("clickToPrompt.warm.steps_p50_ms.ready"))} ms`, "", ""],
    ["↳ real Chromium on /playground/, warm: page's POST → prompt drawn, p50 / p95", pair("clickToPrompt.browser.click_to_prompt.p50_ms", "clickToPrompt.browser.click_to_prompt.p95_ms", "ms"), "", ""],
    ["↳ real Chromium: of which POST → the page opens its WebSocket (loading xterm meanwhile), p50", `${fmt(n("clickToPrompt.browser.post_to_socket.p50_ms"))} ms`, "", ""],
    ["**Browser**: real Chromium, navigation start → prompt drawn (warm pool), p50 / p95", pair("browser.nav_to_prompt.p50_ms", "browser.nav_to_prompt.p95_ms", "ms"), "p50 ≤ 350 ms", verdict(lt(n("browser.nav_to_prompt.p50_ms"), 350))],
    ["↳ peer: WeTTY, connect → prompt of a new `docker exec -it` shell, p50", `${fmt(n("clickToPrompt.peer_connect.p50_ms"))} ms`, "", ""],
    ["**Click to prompt, cold** (no pool: container + inner dockerd start), p50 / p95", pair("clickToPrompt.cold.p50_ms", "clickToPrompt.cold.p95_ms", "ms"), "p50 ≤ 1500 ms", verdict(lt(n("clickToPrompt.cold.p50_ms"), 1500))],
    ["**Keystroke echo**, 1 terminal, p50 / p99", pair("echo.t1.p50_ms", "echo.t1.p99_ms", "ms"), "", ""],
    [`**Keystroke echo**, ${fmt(n("echo.t50.terminals"))} terminals at 10 keys/s each, p50 / p99`, pair("echo.t50.p50_ms", "echo.t50.p99_ms", "ms"), "p99 ≤ 15 ms, better than the peer",
      verdict(echoGoal === undefined ? undefined : echoGoal && echoBetter !== false)],
    ["↳ anchor: floor, `bash` exec'd with a TTY through the engine API, 1 / 50 terminals, p99", `${fmt(n("echo.floor1.p99_ms"))} / ${fmt(n("echo.floor50.p99_ms"))} ms`, "", ""],
    ["↳ peer (WeTTY), 1 terminal, p50 / p99", pair("echo.peer1.p50_ms", "echo.peer1.p99_ms", "ms"), "", ""],
    [`↳ peer (WeTTY), ${fmt(n("echo.peer50.terminals"))} terminals, p50 / p99`, pair("echo.peer50.p50_ms", "echo.peer50.p99_ms", "ms"), "", ""],
    [`**Output throughput**, one terminal, ${fmt(n("throughput.megabytes"))} MB with ACK flow control`, `${fmt(n("throughput.mb_per_s"))} MB/s (${fmt(n("throughput.mb_per_s") !== undefined && n("throughput.floor_mb_per_s") ? Math.round((100 * n("throughput.mb_per_s")!) / n("throughput.floor_mb_per_s")!) / 100 : undefined)} × the floor)`, "≥ 30 MB/s and ≥ 0.85 × the floor",
      verdict(gt(n("throughput.mb_per_s"), 30) === undefined || !n("throughput.floor_mb_per_s") ? undefined : gt(n("throughput.mb_per_s"), 30)! && n("throughput.mb_per_s")! >= 0.85 * n("throughput.floor_mb_per_s")!)],
    ["↳ server RSS before → peak during it; server CPU per MB", `${fmt(n("throughput.server_start_rss_mb"))} → ${fmt(n("throughput.server_peak_rss_mb"))} MiB; ${fmt(n("throughput.server_cpu_ms_per_mb"))} ms`, "bounded", ""],
    ["↳ anchor: floor, engine exec with a TTY read straight from the socket", `${fmt(n("throughput.floor_mb_per_s"))} MB/s`, "", ""],
    ["↳ peer (WeTTY), same output; its RSS before → peak; its CPU per MB", `${fmt(n("throughput.peer_mb_per_s"))} MB/s; ${fmt(n("throughput.peer_start_rss_mb"))} → ${fmt(n("throughput.peer_peak_rss_mb"))} MiB; ${fmt(n("throughput.peer_cpu_ms_per_mb"))} ms`, "", ""],
    ["**Density**: idle sandboxes held at once", `${fmt(n("density.idle_sandboxes"))} (${String(at(r, "density.stopped_because") ?? "–")})`, "≥ 150", verdict(gt(n("density.idle_sandboxes"), 150))],
    ["↳ memory per idle sandbox: host MemAvailable drop / cgroup (docker stats)", `${fmt(n("density.mb_per_sandbox"))} / ${fmt(n("density.cgroup_mb_per_sandbox"))} MiB`, "", ""],
    ["↳ server memory per 100 attached terminals", `${fmt(n("density.server_mb_per_100_terminals"))} MiB`, "", ""],
    [`**A class arrives**: ${fmt(n("burst50.learners"))} learners within ${fmt(n("burst50.spread_s"))} s, warm pool ${fmt(n("burst50.pool_size"))}: last prompt after`, `${fmt(n("burst50.all_ready_s"))} s (${fmt(n("burst50.ready"))} ready, ${fmt(n("burst50.failed"))} failed)`, "≤ 10 s", verdict(lt(n("burst50.all_ready_s"), 10))],
    ["↳ each learner's wait, p50 / p95 / max", `${fmt(n("burst50.p50_ms"))} / ${fmt(n("burst50.p95_ms"))} / ${fmt(n("burst50.max_ms"))} ms`, "p50 < 3000 ms", verdict(lt(n("burst50.p50_ms"), 2999.9))],
    ["↳ anchor: cold click to prompt of one learner alone (above), p50", `${fmt(n("clickToPrompt.cold.p50_ms"))} ms`, "", ""],
    [`**A class presses Check**: ${fmt(n("checks50.learners"))} learners, one press each within ${fmt(n("checks50.spread_s"))} s: press → verdict p50 / p95 / max`, `${fmt(n("checks50.p50_ms"))} / ${fmt(n("checks50.p95_ms"))} / ${fmt(n("checks50.max_ms"))} ms (${fmt(n("checks50.passed"))} passed)`, "≤ 2000 / ≤ 5000 ms",
      verdict(lt(n("checks50.p50_ms"), 2000) === undefined ? undefined : lt(n("checks50.p50_ms"), 2000)! && lt(n("checks50.p95_ms"), 5000)! && n("checks50.failed") === 0)],
    [`**Sandbox panel**: server CPU per watched sandbox (${fmt(n("sandboxPanel.sandboxes"))} watched), idle / an event a second`, `${fmt(n("sandboxPanel.watched_idle.cpu_percent_per_sandbox"))} / ${fmt(n("sandboxPanel.watched_event_per_s.cpu_percent_per_sandbox"))} % of a core`, "", ""],
    ["↳ server memory per watched sandbox", `${fmt(n("sandboxPanel.rss_mb_per_watched_sandbox"))} MiB`, "", ""],
  ];
  const errors = Object.entries((r.errors ?? {}) as Record<string, string>);
  return [
    `Measured ${String(r.date ?? "")} with \`${String(r.command ?? "npm run bench")}\` in ${fmt(num(r, "duration_s"), " s")}, on ${fmt(num(m, "cores"))} cores (${String(m.cpu ?? "")}), ` +
      `${fmt(num(m, "memory_gib"))} GiB, kernel ${String(m.kernel ?? "")}, Docker ${String(m.docker ?? "")}, Node ${String(m.node ?? "")}; ` +
      `load average ${JSON.stringify(m.load_average_at_start ?? [])} at the start, ${JSON.stringify(r.load_average_at_end ?? [])} at the end; ` +
      `CPU pressure (share of the last minute in which a task waited for a CPU) ${fmt(num(m, "cpu_pressure_at_start"), " %")} at the start, ${fmt(num(r, "cpu_pressure_at_end"), " %")} at the end. ` +
      `Raw figures: [bench/results/latest.json](../bench/results/latest.json).`,
    "",
    "| figure | result | goal | |",
    "|---|---|---|---|",
    ...rows.map((row) => `| ${row.join(" | ")} |`),
    "",
    ...(errors.length ? ["Not measured in this run:", "", ...errors.map(([k, v]) => `- ${k}: ${v.replace(/\n/g, " ")}`), ""] : []),
  ].join("\n");
}

/** Replaces the generated section of docs/BENCHMARKS.md (the hand-written text around it stays). */
export function updateBenchmarksDoc(results: Record<string, unknown>): void {
  const generated = `${START}\n${renderResults(results)}\n${END}`;
  const text = existsSync(DOC) ? readFileSync(DOC, "utf8") : `# Benchmarks\n\n${START}\n${END}\n`;
  const i = text.indexOf(START);
  const j = text.indexOf(END);
  const next = i >= 0 && j > i ? text.slice(0, i) + generated + text.slice(j + END.length) : `${text.trimEnd()}\n\n${generated}\n`;
  writeFileSync(DOC, next);
}
