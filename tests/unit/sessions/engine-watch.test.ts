import { PassThrough } from "node:stream";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { SandboxStateWatchers, type StateSnapshot } from "../../../sandbox-server/src/inspector/state-watcher.ts";
import { silentLogger } from "../../../sandbox-server/src/log.ts";
import { PortWatchers, type PortsSnapshot } from "../../../sandbox-server/src/preview/port-watcher.ts";
import type { SandboxRuntime } from "../../../sandbox-server/src/runtime/types.ts";
import { EngineEventFeeds } from "../../../sandbox-server/src/sessions/engine-watch.ts";
import type { SessionManager } from "../../../sandbox-server/src/sessions/session-manager.ts";

const ID = "4b56a209f99de46edbb927ddc93080ccb0b322336d73748a7f7f547aaffbb877";

/**
 * One sandbox watched by a page with a port list and a sandbox panel: the engine's `docker events`
 * (an exec stream the test controls) must be one, shared, and ended only when both have left.
 */
function page() {
  const state = { ps: "", execs: [] as string[], streams: [] as Array<{ stdout: PassThrough; closed: boolean }> };
  const runtime = {
    exec: async (_id: string, cmd: string[]) => {
      const isPs = cmd[0] === "docker" && cmd[1] === "ps";
      state.execs.push(isPs ? "ps" : "state");
      return { exitCode: 0, stdout: isPs ? state.ps : "@@end\n", stderr: "", timedOut: false, truncated: false };
    },
    inspect: async () => ({ address: "10.213.128.5" }),
    execStream: async () => {
      const s = { stdout: new PassThrough(), closed: false };
      state.streams.push(s);
      return { stdout: s.stdout, close: () => ((s.closed = true), s.stdout.end()) };
    },
  } as unknown as SandboxRuntime;
  const sessions = { sandboxOf: async () => "sandbox-1" } as unknown as SessionManager;
  const feeds = new EngineEventFeeds({ runtime, sessions });
  const ports = new PortWatchers({ runtime, sessions, feeds, log: silentLogger, describe: (sessionId, p) => ({ ...p, url: `/preview/${sessionId}/${p.port}/`, previewUrl: null }) });
  const panel = new SandboxStateWatchers({ runtime, sessions, feeds, log: silentLogger, previewUrl: (s, p) => `/preview/${s}/${p}/` });
  return { state, feeds, ports, panel };
}

describe("one engine event feed per watched sandbox", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("is shared by the port list and the panel, drives both, and ends when the last of them leaves", async () => {
    const { state, feeds, ports, panel } = page();
    const seenPorts: PortsSnapshot[] = [];
    const seenStates: StateSnapshot[] = [];
    const stopPorts = ports.subscribe("s1", "o1", (s) => seenPorts.push(s), () => {});
    const stopPanel = panel.subscribe("s1", "o1", (s) => seenStates.push(s), () => {});
    await vi.advanceTimersByTimeAsync(2_000);
    expect(state.streams).toHaveLength(1);
    expect(feeds.size).toBe(1);
    expect(seenPorts).toHaveLength(1);
    expect(seenStates).toHaveLength(1);

    // One event: both read again; only the port list changed, so only it tells its page.
    state.ps = `${ID}\tweb\tnginx\t0.0.0.0:8080->80/tcp\n`;
    const before = state.execs.length;
    state.streams[0]!.stdout.write("container\n");
    await vi.advanceTimersByTimeAsync(3_000);
    expect(state.execs.slice(before)).toEqual(expect.arrayContaining(["ps", "state"]));
    expect(seenPorts.at(-1)!.ports.map((p) => p.port)).toEqual([8080]);
    expect(seenStates).toHaveLength(1);

    stopPorts();
    expect(state.streams[0]!.closed).toBe(false); // the panel still looks
    stopPanel();
    expect(state.streams[0]!.closed).toBe(true);
    expect(feeds.size).toBe(0);
  });
});
