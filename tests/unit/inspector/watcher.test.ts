import { PassThrough } from "node:stream";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ShipshapeError } from "../../../sandbox-server/src/errors.ts";
import { silentLogger } from "../../../sandbox-server/src/log.ts";
import { SandboxStateWatchers, type StateSnapshot } from "../../../sandbox-server/src/inspector/state-watcher.ts";
import type { SandboxRuntime } from "../../../sandbox-server/src/runtime/types.ts";
import { EngineEventFeeds } from "../../../sandbox-server/src/sessions/engine-watch.ts";
import type { SessionManager } from "../../../sandbox-server/src/sessions/session-manager.ts";

const volume = (name: string) => `@@volumes\n${JSON.stringify({ name, driver: "local" })}\n@@end\n`;

/** A sandbox whose state output and event stream the test controls. */
function fakes() {
  const state = { out: "@@end\n", gone: false, execs: 0, streams: [] as Array<{ stdout: PassThrough; closed: boolean }> };
  const runtime = {
    exec: async () => {
      state.execs++;
      return { exitCode: 0, stdout: state.out, stderr: "", timedOut: false, truncated: false };
    },
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
  const watchers = new SandboxStateWatchers({ runtime, sessions, feeds: new EngineEventFeeds({ runtime, sessions }), log: silentLogger, previewUrl: (s, p) => `/preview/${s}/${p}/` });
  return { state, watchers };
}

describe("sandbox state watches", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("reads once, then only after events, tells only changes in words, and stops with the last listener", async () => {
    const { state, watchers } = fakes();
    const seen: StateSnapshot[] = [];
    const stop = watchers.subscribe("s1", "o1", (s) => seen.push(s), () => {});
    await vi.advanceTimersByTimeAsync(2_000);
    expect(seen).toHaveLength(1);
    const atRest = state.execs;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(state.execs).toBe(atRest);

    state.out = volume("data");
    state.streams[0]!.stdout.write("volume\n");
    await vi.advanceTimersByTimeAsync(2_000);
    expect(seen.map((s) => s.changes)).toEqual([[], ["volume data created"]]);

    state.streams[0]!.stdout.write("container\n"); // nothing shown changed: nothing sent
    await vi.advanceTimersByTimeAsync(3_000);
    expect(seen).toHaveLength(2);

    stop();
    expect(state.streams[0]!.closed).toBe(true);
    expect(watchers.counters.watches).toBe(0);
  });

  it("reads at most once a second under a storm of events, and every 5 s when it never stops", async () => {
    const { state, watchers } = fakes();
    watchers.subscribe("s1", "o1", () => {}, () => {});
    await vi.advanceTimersByTimeAsync(2_000);
    const before = state.execs;
    const storm = setInterval(() => state.streams[0]!.stdout.write("x\n"), 10);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(state.execs - before).toBeLessThanOrEqual(11);
    expect(state.execs - before).toBeGreaterThanOrEqual(8);
    await vi.advanceTimersByTimeAsync(120_000);
    const busy = state.execs;
    await vi.advanceTimersByTimeAsync(60_000);
    clearInterval(storm);
    expect(state.execs - busy).toBeLessThanOrEqual(13);
  });

  it("ends the watch when the session is gone", async () => {
    const { state, watchers } = fakes();
    const ended: string[] = [];
    watchers.subscribe("s1", "o1", () => {}, (reason) => ended.push(reason));
    await vi.advanceTimersByTimeAsync(2_000);
    state.gone = true;
    state.streams[0]!.stdout.end();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(ended).toEqual(["This sandbox no longer exists. Start a new one."]);
    expect(watchers.counters.watches).toBe(0);
  });

  it("asks for log lines only of a container named by its full id", async () => {
    const { watchers } = fakes();
    await expect(watchers.logs("s1", "o1", "web; rm -rf /")).rejects.toMatchObject({ code: "bad_request" });
  });
});
