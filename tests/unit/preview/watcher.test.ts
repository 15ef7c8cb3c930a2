import { PassThrough } from "node:stream";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ShipshapeError } from "../../../sandbox-server/src/errors.ts";
import { silentLogger } from "../../../sandbox-server/src/log.ts";
import { PortWatchers, type PortsSnapshot } from "../../../sandbox-server/src/preview/port-watcher.ts";
import type { SandboxRuntime } from "../../../sandbox-server/src/runtime/types.ts";
import { EngineEventFeeds } from "../../../sandbox-server/src/sessions/engine-watch.ts";
import type { SessionManager } from "../../../sandbox-server/src/sessions/session-manager.ts";

const ID = "4b56a209f99de46edbb927ddc93080ccb0b322336d73748a7f7f547aaffbb877";

/** A sandbox whose `docker ps` output and event stream the test controls. */
function fakes() {
  const state = { ps: "", gone: false, execs: 0, streams: [] as Array<{ stdout: PassThrough; closed: boolean }> };
  const runtime = {
    exec: async () => {
      state.execs++;
      return { exitCode: 0, stdout: state.ps, stderr: "", timedOut: false, truncated: false };
    },
    inspect: async () => ({ address: "10.213.128.5" }),
    execStream: async () => {
      const s = { stdout: new PassThrough(), closed: false };
      state.streams.push(s);
      return { stdout: s.stdout, close: () => ((s.closed = true), s.stdout.end()) };
    },
  } as unknown as SandboxRuntime;
  const sessions = {
    sandboxOf: async () => {
      if (state.gone) throw new ShipshapeError("not_found", "This sandbox no longer exists. Start a new one.");
      return "sandbox-1";
    },
  } as unknown as SessionManager;
  const watchers = new PortWatchers({
    runtime,
    sessions,
    feeds: new EngineEventFeeds({ runtime, sessions }),
    log: silentLogger,
    describe: (sessionId, p) => ({ ...p, url: `/preview/${sessionId}/${p.port}/`, previewUrl: null }),
  });
  return { state, watchers };
}

const published = (port: number) => `${ID}\tweb\tnginx\t0.0.0.0:${port}->80/tcp\n`;
const portsOf = (s: PortsSnapshot | undefined) => s?.ports.map((p) => p.port);

describe("live port watches", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("reads once, then again only when the engine reports a change, and tells only changes", async () => {
    const { state, watchers } = fakes();
    const seen: PortsSnapshot[] = [];
    const stop = watchers.subscribe("s1", "o1", (s) => seen.push(s), () => {});
    await vi.advanceTimersByTimeAsync(1_000);
    expect(seen.map(portsOf)).toEqual([[]]);
    expect(state.streams).toHaveLength(1);
    const readsAfterStart = state.execs;

    await vi.advanceTimersByTimeAsync(60_000);
    expect(state.execs).toBe(readsAfterStart); // quiet sandbox: no reads at all

    state.ps = published(8080);
    state.streams[0]!.stdout.write("start\n");
    await vi.advanceTimersByTimeAsync(1_000);
    expect(seen.map(portsOf)).toEqual([[], [8080]]);

    state.streams[0]!.stdout.write("die\n"); // an event that changed nothing we show
    await vi.advanceTimersByTimeAsync(1_000);
    expect(seen).toHaveLength(2);

    stop();
    expect(state.streams[0]!.closed).toBe(true);
  });

  it("reads once more after an event, in case docker ps lags behind the engine's events", async () => {
    const { state, watchers } = fakes();
    state.ps = published(8080);
    const seen: PortsSnapshot[] = [];
    watchers.subscribe("s1", "o1", (s) => seen.push(s), () => {});
    await vi.advanceTimersByTimeAsync(1_000);
    state.streams[0]!.stdout.write("die\n"); // reported, but docker ps still lists it for a moment
    await vi.advanceTimersByTimeAsync(300);
    state.ps = "";
    await vi.advanceTimersByTimeAsync(2_000);
    expect(seen.map(portsOf)).toEqual([[8080], []]);
  });

  it("shares one watch between listeners, and a late listener hears the current list at once", async () => {
    const { state, watchers } = fakes();
    state.ps = published(3000);
    const first: PortsSnapshot[] = [];
    const second: PortsSnapshot[] = [];
    const stopFirst = watchers.subscribe("s1", "o1", (s) => first.push(s), () => {});
    await vi.advanceTimersByTimeAsync(1_000);
    const stopSecond = watchers.subscribe("s1", "o1", (s) => second.push(s), () => {});
    expect(portsOf(second[0])).toEqual([3000]);
    expect(state.streams).toHaveLength(1);
    stopFirst();
    expect(state.streams[0]!.closed).toBe(false);
    stopSecond();
    expect(state.streams[0]!.closed).toBe(true);
  });

  it("reads at most twice a second under a storm of events, and every 5 s when it never stops", async () => {
    const { state, watchers } = fakes();
    watchers.subscribe("s1", "o1", () => {}, () => {});
    await vi.advanceTimersByTimeAsync(1_000);
    const before = state.execs;
    const storm = setInterval(() => state.streams[0]!.stdout.write("start\n"), 10);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(state.execs - before).toBeLessThanOrEqual(21);
    expect(state.execs - before).toBeGreaterThanOrEqual(15);
    await vi.advanceTimersByTimeAsync(60_000);
    const busy = state.execs;
    await vi.advanceTimersByTimeAsync(60_000);
    clearInterval(storm);
    expect(state.execs - busy).toBeLessThanOrEqual(13);
  });

  it("ends the watch when the session is gone", async () => {
    const { state, watchers } = fakes();
    const ended: string[] = [];
    watchers.subscribe("s1", "o1", () => {}, (reason) => ended.push(reason));
    await vi.advanceTimersByTimeAsync(1_000);
    state.gone = true;
    state.streams[0]!.stdout.end(); // the sandbox went: its event stream ends
    await vi.advanceTimersByTimeAsync(5_000);
    expect(ended).toEqual(["This sandbox no longer exists. Start a new one."]);
  });
});
