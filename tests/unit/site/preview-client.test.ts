import { describe, expect, it } from "vitest";
import { describeChange, parsePortsMessage, PortFeed, type PortsState, type PreviewPort } from "../../../src/client/sandbox/published-ports.ts";

const SID = "abcdefgh12345678";
const port = (n: number, container = "web"): PreviewPort => ({
  port: n,
  containerPort: 80,
  container,
  image: "nginx",
  reachable: true,
  url: `/preview/${SID}/${n}/`,
  previewUrl: `/preview/${SID}/${n}/`,
});

class FakeSocket {
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number }) => void) | null = null;
  closed = false;
  readonly url: string;
  constructor(url: string) {
    this.url = url;
  }
  close(): void {
    this.closed = true;
  }
  open(): void {
    this.onopen?.({});
  }
  push(message: object): void {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
  drop(code: number): void {
    this.onclose?.({ code });
  }
}

/** A page, a clock and a network the test drives by hand. */
function harness() {
  const sockets: FakeSocket[] = [];
  const fetches: string[] = [];
  let timers: Array<{ fn: () => void; at: number; id: number }> = [];
  let now = 0;
  let nextId = 1;
  const visibility = new Set<() => void>();
  const page = {
    visibilityState: "visible",
    addEventListener: (_t: "visibilitychange", l: () => void) => visibility.add(l),
    removeEventListener: (_t: "visibilitychange", l: () => void) => visibility.delete(l),
  };
  let answer: () => Response = () => new Response(JSON.stringify({ sessionId: SID, state: "ready", ports: [port(8080)] }), { status: 200 });
  const feed = new PortFeed({
    socketUrl: "ws://site/ws/ports",
    openSocket: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    fetch: async (url) => {
      fetches.push(url);
      return answer();
    },
    page,
    setTimeout: (fn, ms) => {
      const id = nextId++;
      timers.push({ fn, at: now + ms, id });
      return id;
    },
    clearTimeout: (id) => {
      timers = timers.filter((t) => t.id !== id);
    },
  });
  const states: PortsState[] = [];
  return {
    feed,
    sockets,
    fetches,
    states,
    page,
    subscribe: () => feed.subscribe((s) => states.push(s)),
    setVisibility(v: "visible" | "hidden") {
      page.visibilityState = v;
      for (const l of visibility) l();
    },
    setAnswer(a: () => Response) {
      answer = a;
    },
    async advance(ms: number) {
      const settle = () => new Promise((r) => setTimeout(r, 0));
      await settle();
      now += ms;
      for (;;) {
        const due = timers.filter((t) => t.at <= now).sort((a, b) => a.at - b.at)[0];
        if (!due) break;
        timers = timers.filter((t) => t !== due);
        due.fn();
        await settle();
      }
      await settle();
    },
  };
}

describe("port list messages", () => {
  it("accepts the server's list and drops what does not fit", () => {
    const state = parsePortsMessage({
      state: "ready",
      ports: [
        port(8080),
        { ...port(8081), url: "javascript:alert(1)" },
        { ...port(8082), url: "https://evil.example/" },
        { ...port(8083), port: 70000 },
        { port: "8084" },
        null,
      ],
    });
    expect(state).toEqual({
      state: "ready",
      ports: [
        port(8080),
        { ...port(8081), url: null, reachable: false },
        { ...port(8082), url: null, reachable: false },
      ],
    });
    expect(parsePortsMessage({ state: "none" })).toEqual({ state: "none", message: "You have no sandbox yet." });
    expect(parsePortsMessage({ state: "weird" })).toBeUndefined();
    expect(parsePortsMessage("ready")).toBeUndefined();
  });

  it("tells what changed, in words", () => {
    expect(describeChange([port(8080)], [port(8080), port(3000, "api")])).toBe("Port 3000 (api) is published.");
    expect(describeChange([port(8080), port(3000)], [port(3000)])).toBe("Port 8080 is no longer published.");
    expect(describeChange([port(8080)], [port(8080)])).toBeUndefined();
  });
});

describe("the live port feed", () => {
  it("listens on the push socket and stops while the page is hidden", async () => {
    const h = harness();
    h.subscribe();
    expect(h.sockets).toHaveLength(1);
    h.sockets[0]!.open();
    h.sockets[0]!.push({ type: "ports", sessionId: SID, state: "ready", ports: [port(8080)] });
    expect(h.states.at(-1)).toEqual({ state: "ready", ports: [port(8080)] });

    h.setVisibility("hidden");
    expect(h.sockets[0]!.closed).toBe(true);
    await h.advance(60_000);
    expect(h.sockets).toHaveLength(1);
    expect(h.fetches).toEqual([]);

    h.setVisibility("visible");
    expect(h.sockets).toHaveLength(2);
  });

  it("waits for a sandbox when there is none, or looks at once when nudged", async () => {
    const h = harness();
    h.subscribe();
    h.sockets[0]!.open();
    h.sockets[0]!.push({ type: "ports", state: "none", ports: [], message: "You have no sandbox yet." });
    h.sockets[0]!.drop(4004);
    expect(h.states.at(-1)).toEqual({ state: "none", message: "You have no sandbox yet." });
    await h.advance(4_000);
    expect(h.sockets).toHaveLength(1);
    h.feed.nudge();
    expect(h.sockets).toHaveLength(2);
  });

  it("reconnects with back-off after a dropped socket", async () => {
    const h = harness();
    h.subscribe();
    h.sockets[0]!.open();
    h.sockets[0]!.drop(1006);
    await h.advance(999);
    expect(h.sockets).toHaveLength(1);
    await h.advance(1);
    expect(h.sockets).toHaveLength(2);
  });

  it("falls back to polling every 2 s when the socket never opens, and polls only while visible", async () => {
    const h = harness();
    h.subscribe();
    h.sockets[0]!.drop(1006);
    await h.advance(1_000);
    h.sockets[1]!.drop(1006);
    await h.advance(0);
    expect(h.fetches).toEqual(["/api/sessions/current/ports"]);
    expect(h.states.at(-1)).toEqual({ state: "ready", ports: [port(8080)] });
    await h.advance(2_000);
    await h.advance(2_000);
    expect(h.fetches).toHaveLength(3);

    h.setAnswer(() => new Response(JSON.stringify({ error: "not_found" }), { status: 404 }));
    await h.advance(2_000);
    expect(h.states.at(-1)).toEqual({ state: "none", message: "You have no sandbox yet." });

    h.setVisibility("hidden");
    await h.advance(20_000);
    expect(h.fetches).toHaveLength(4);
    h.setVisibility("visible");
    await h.advance(0);
    expect(h.fetches).toHaveLength(5);
    expect(h.sockets).toHaveLength(2);
  });
});
