/**
 * What the sandbox panel costs the server: CPU and memory per watched sandbox, with the sandboxes
 * idle and with one engine event a second in each (a volume created or removed). Three windows on
 * the same sandboxes: nobody watching (the baseline), every sandbox watched and idle, every
 * sandbox watched with an event a second.
 */
import WebSocket from "ws";
import { docker } from "../lib/docker.ts";
import { cpuMs, type BenchServer } from "../lib/server.ts";
import { round, sleep } from "../lib/stats.ts";
import type { Session } from "../lib/terminal.ts";

export interface PanelWindow {
  cpu_ms_per_s: number;
  /** Server CPU per watched sandbox over the baseline, in % of one core. */
  cpu_percent_per_sandbox?: number;
  rss_mb: number;
  /** Snapshots the server pushed during the window (all sockets). */
  snapshots: number;
}

export interface PanelResult {
  sandboxes: number;
  window_s: number;
  unwatched: PanelWindow;
  watched_idle: PanelWindow;
  watched_event_per_s: PanelWindow;
  rss_mb_per_watched_sandbox: number;
  how: string;
}

async function measure(server: BenchServer, seconds: number, counter: { n: number }): Promise<PanelWindow> {
  const cpu0 = cpuMs(server.pid);
  const n0 = counter.n;
  const rss: number[] = [];
  for (let i = 0; i < seconds; i++) {
    await sleep(1_000);
    rss.push(server.rssMb());
  }
  return { cpu_ms_per_s: round((cpuMs(server.pid) - cpu0) / seconds, 2), rss_mb: round(Math.max(...rss)), snapshots: counter.n - n0 };
}

export async function sandboxPanel(server: BenchServer, sessions: Session[], options: { seconds: number; log: (l: string) => void }): Promise<PanelResult> {
  const counter = { n: 0 };
  options.log(`panel: ${sessions.length} sandboxes, nobody watching (${options.seconds} s)`);
  const unwatched = await measure(server, options.seconds, counter);

  const sockets: WebSocket[] = [];
  const firsts: Promise<void>[] = [];
  for (const s of sessions) {
    const ws = new WebSocket(`${s.base.replace(/^http/, "ws")}/ws/sandbox-state`, { headers: { cookie: s.cookie, origin: s.base } });
    firsts.push(
      new Promise<void>((resolve, reject) => {
        ws.on("message", (d: Buffer) => {
          if ((JSON.parse(d.toString()) as { type: string }).type === "state") {
            counter.n++;
            resolve();
          }
        });
        ws.once("close", (code) => reject(new Error(`sandbox-state socket closed ${code}`)));
      }),
    );
    sockets.push(ws);
  }
  await Promise.all(firsts);
  await sleep(3_000); // the trailing confirming reads of the first snapshot
  options.log(`panel: ${sessions.length} sandboxes watched, idle (${options.seconds} s)`);
  const watchedIdle = await measure(server, options.seconds, counter);

  // One engine event a second in each sandbox: a volume created, then removed, alternately.
  const loop = 'i=0; while :; do docker volume create "bench$i" >/dev/null; sleep 1; docker volume rm "bench$i" >/dev/null; i=$((i+1)); sleep 1; done';
  for (const s of sessions) await docker(["exec", "-d", server.sandboxOf(s.sessionId), "sh", "-c", loop]);
  await sleep(3_000);
  options.log(`panel: ${sessions.length} sandboxes watched, an event a second in each (${options.seconds} s)`);
  const watchedBusy = await measure(server, options.seconds, counter);
  for (const ws of sockets) ws.close();

  const per = (w: PanelWindow) => round(((w.cpu_ms_per_s - unwatched.cpu_ms_per_s) / sessions.length / 1000) * 100, 2);
  watchedIdle.cpu_percent_per_sandbox = per(watchedIdle);
  watchedBusy.cpu_percent_per_sandbox = per(watchedBusy);
  return {
    sandboxes: sessions.length,
    window_s: options.seconds,
    unwatched,
    watched_idle: watchedIdle,
    watched_event_per_s: watchedBusy,
    rss_mb_per_watched_sandbox: round((Math.max(watchedIdle.rss_mb, watchedBusy.rss_mb) - unwatched.rss_mb) / sessions.length, 2),
    how: "server process CPU (utime+stime from /proc) and peak RSS over each window; one /ws/sandbox-state socket per sandbox; CPU per sandbox is over the unwatched baseline",
  };
}
