/**
 * Bad input: seeded random and malformed input to the terminal WebSocket protocol and the HTTP
 * API of a real server process. It must not crash, leak (memory, sockets, sandboxes), or answer
 * anything but a clear error: JSON `{error, message}` over HTTP, `{type: "error"}` messages or a
 * documented close code on the socket. Repeat a failing run with SHIPSHAPE_FUZZ_SEED=<seed>.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, mkdtempSync, mkdirSync, writeFileSync, cpSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot, testEnv } from "../support/server.ts";
import { openSession, TestTerminal, type Session } from "../support/terminal.ts";
import { spawnServer, type ServerProcess } from "./processes.ts";
import { leftovers, prng, sleep } from "./support.ts";

const SEED = process.env.SHIPSHAPE_FUZZ_SEED ? Number(process.env.SHIPSHAPE_FUZZ_SEED) : Date.now() % 2 ** 31;
const WS_CONNECTIONS = 240;
const HTTP_REQUESTS = 900;
/** docs/protocol.md "Close codes", plus 1002/1007 that the WebSocket library sends for broken frames. */
const DOCUMENTED_CLOSE_CODES = new Set([1000, 1001, 1002, 1007, 1008, 1009, 1011, 4000, 4001, 4004, 4010, 4011, 4029, 4503]);
const SERVER_MESSAGE_TYPES = new Set(["status", "ready", "pong", "error", "notice"]);

console.log(`fuzz seed ${SEED} (repeat with SHIPSHAPE_FUZZ_SEED=${SEED})`);
const rand = prng(SEED);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(0, 255)));
const unicode = (n: number) => Array.from({ length: n }, () => String.fromCodePoint(pick([int(0, 0x7f), int(0x80, 0x7ff), int(0x800, 0xd7ff), int(0x10000, 0x10ffff)]))).join("");
const weird = () =>
  pick<unknown>([null, true, -1, 0, 1e308, -1e308, 2 ** 53 + 7, "", "x".repeat(int(1, 3000)), unicode(int(1, 50)), [], {}, [1, [2, [3]]], { $gt: "" }, "NaN", "../../etc/passwd", "<script>alert(1)</script>"]);
const deep = (n: number) => "[".repeat(n) + "]".repeat(n);

let server: ServerProcess;
let session: Session;
let owner: TestTerminal;

/** Numbers about the server process that a leak would grow. */
function processStats(pid: number): { rssMiB: number; sockets: number; fds: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  let sockets = 0;
  const fds = readdirSync(`/proc/${pid}/fd`);
  for (const fd of fds) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:")) sockets++;
    } catch {
      /* closed meanwhile */
    }
  }
  return { rssMiB: Math.round(rss), sockets, fds: fds.length };
}

beforeAll(async () => {
  server = await spawnServer({ SHIPSHAPE_SESSIONS_PER_ADDRESS_PER_MINUTE: "10000" });
  session = await openSession(server.url);
  owner = new TestTerminal(session);
  await owner.ready(60_000);
}, 120_000);

afterAll(async () => {
  owner?.close();
  await fetch(`${server.url}/api/sessions/current`, { method: "DELETE", headers: { origin: server.url, cookie: session.cookie } }).catch(() => {});
  await server?.stop();
});

// ---------------------------------------------------------------------------------------------
// WebSocket

/** One frame of nonsense, sometimes nearly valid. Binary to a live shell never contains Enter. */
function wsFrame(helloDone: boolean): { data: Buffer | string; binary: boolean; note: string } {
  const kind = int(0, 13);
  switch (kind) {
    case 0:
      return { data: Buffer.from(bytes(int(0, 2048)).map((b) => (helloDone && (b === 10 || b === 13) ? 32 : b))), binary: true, note: "binary junk" };
    case 1:
      return { data: unicode(int(0, 200)), binary: false, note: "unicode text" };
    case 2:
      return { data: pick(["{", "}", "null", "[]", '{"type":', '"hello"', "1e999", "{}", deep(int(100, 5000))]), binary: false, note: "malformed JSON" };
    case 3:
      return { data: JSON.stringify({ type: weird() }), binary: false, note: "unknown type" };
    case 4:
      return { data: JSON.stringify({ type: "hello", token: weird(), terminal: weird(), cols: weird(), rows: weird() }), binary: false, note: "bad hello" };
    case 5:
      return { data: JSON.stringify({ type: "hello", token: session.token, terminal: pick(["fuzz", "fuzz-b", "a".repeat(33), "UPPER", "../x", ""]), cols: weird(), rows: weird() }), binary: false, note: "hello, odd fields" };
    case 6:
      return { data: JSON.stringify({ type: "resize", cols: weird(), rows: weird() }), binary: false, note: "bad resize" };
    case 7:
      return { data: JSON.stringify({ type: "resize", cols: int(-10, 100_000), rows: int(-10, 100_000) }), binary: false, note: "resize out of range" };
    case 8:
      return { data: JSON.stringify({ type: "ack", bytes: pick([-1, 2 ** 40, 1.5, "1", int(0, 1 << 20)]) }), binary: false, note: "ack" };
    case 9:
      return { data: JSON.stringify({ type: "ping", t: weird() }), binary: false, note: "ping" };
    case 10:
      return { data: '{"type":"hello","__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"token":"x"}', binary: false, note: "prototype pollution" };
    case 11:
      return { data: "x".repeat(64 * 1024 + int(1, 1000)), binary: false, note: "oversize text" };
    case 12:
      return { data: bytes(int(1, 64)).toString("latin1"), binary: false, note: "latin1 text" };
    default:
      return { data: JSON.stringify({ type: "ping", t: int(0, 1e9) }), binary: false, note: "valid ping" };
  }
}

interface WsOutcome {
  frames: string[];
  close?: { code: number; reason: string };
  protocolViolations: string[];
}

async function fuzzSocket(i: number): Promise<WsOutcome> {
  const outcome: WsOutcome = { frames: [], protocolViolations: [] };
  const cookie = pick([session.cookie, session.cookie, session.cookie, "shipshape_owner=forged.value", ""]);
  const ws = new WebSocket(server.url.replace(/^http/, "ws") + "/ws/terminal", { headers: { origin: server.url, ...(cookie ? { cookie } : {}) } });
  const closed = new Promise<void>((resolve) => {
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (isBinary) return;
      const text = data.toString("utf8");
      try {
        const m = JSON.parse(text) as { type?: unknown; code?: unknown; message?: unknown };
        if (!SERVER_MESSAGE_TYPES.has(String(m.type))) outcome.protocolViolations.push(`unknown server message ${text.slice(0, 200)}`);
        if (m.type === "error" && (typeof m.code !== "string" || typeof m.message !== "string" || m.message.length < 5)) {
          outcome.protocolViolations.push(`unclear error ${text.slice(0, 200)}`);
        }
      } catch {
        outcome.protocolViolations.push(`non-JSON text frame ${text.slice(0, 200)}`);
      }
    });
    ws.on("close", (code, reason) => {
      outcome.close = { code, reason: reason.toString("utf8") };
      resolve();
    });
    ws.on("unexpected-response", (_req, res) => {
      // Refused before a socket exists (forged or missing cookie): a plain HTTP 403 is documented.
      if (res.statusCode !== 403) outcome.protocolViolations.push(`upgrade answered ${res.statusCode}`);
      outcome.close = { code: -res.statusCode!, reason: "refused upgrade" };
      resolve();
    });
    ws.on("error", () => resolve());
  });
  const opened = await Promise.race([new Promise<boolean>((r) => ws.once("open", () => r(true))), closed.then(() => false)]);
  if (opened) {
    let helloDone = false;
    if (rand() < 0.5) {
      // Half the sockets get past the hello, so the frames after it reach a live shell's hub.
      ws.send(JSON.stringify({ type: "hello", token: session.token, terminal: pick(["fuzz", "fuzz-b"]), cols: int(2, 300), rows: int(1, 100) }));
      helloDone = true;
      await sleep(int(0, 300));
    }
    const count = int(1, 12);
    for (let k = 0; k < count && ws.readyState === WebSocket.OPEN; k++) {
      const f = wsFrame(helloDone);
      outcome.frames.push(f.note);
      if (f.note === "hello, odd fields") helloDone = true;
      ws.send(f.data, { binary: f.binary });
      if (rand() < 0.3) await sleep(int(1, 30));
    }
    // Clear whatever junk reached a live shell's line: Ctrl-C, Ctrl-U.
    if (ws.readyState === WebSocket.OPEN && helloDone) ws.send(Buffer.from([3, 21]), { binary: true });
    await sleep(int(20, 200));
    if (ws.readyState === WebSocket.OPEN) ws.close(1000);
  }
  await Promise.race([closed, sleep(15_000)]);
  if (!outcome.close) outcome.protocolViolations.push(`connection ${i} did not close`);
  else if (outcome.close.code > 0 && !DOCUMENTED_CLOSE_CODES.has(outcome.close.code)) {
    outcome.protocolViolations.push(`undocumented close code ${outcome.close.code} (${outcome.close.reason}) after ${outcome.frames.join(", ")}`);
  }
  return outcome;
}

/** Raw bytes at the upgrade endpoint: broken HTTP, broken WebSocket handshakes. */
async function rawUpgrade(): Promise<string> {
  const requests = [
    `GET /ws/terminal HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 12\r\nSec-WebSocket-Key: nope\r\nOrigin: ${server.url}\r\nCookie: ${session.cookie}\r\n\r\n`,
    `GET /ws/terminal HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`,
    `GET /ws/${"a".repeat(int(1, 9000))} HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`,
    bytes(int(1, 4000)).toString("latin1"),
    "GET / HTTP/1.1\r\n" + "X: y\r\n".repeat(int(100, 3000)) + "\r\n",
  ];
  const payload = pick(requests);
  return new Promise((resolve) => {
    let answer = "";
    const s = connect({ host: "127.0.0.1", port: server.port });
    s.on("data", (d) => (answer += d.toString("latin1")));
    s.on("error", () => resolve(answer));
    s.on("close", () => resolve(answer));
    s.setTimeout(5_000, () => s.destroy());
    s.end(payload);
  });
}

// ---------------------------------------------------------------------------------------------
// HTTP

const PATHS = [
  "/api/sessions",
  "/api/sessions/current",
  "/api/sessions/current/files",
  "/api/exercises/run-and-stop/check",
  "/api/exercises/%00/check",
  "/api/progress",
  "/api/workshops",
  "/api/workshops/join",
  "/api/workshops/mine",
  "/api/workshops/abc/end",
  "/api/workshops/abc/grades.csv",
  "/api/instructor/session",
  "/api/nope",
  "/api/../etc/passwd",
  "/%2e%2e/%2e%2e/etc/passwd",
  "/..%2f..%2fetc/passwd",
  "/healthz",
  "/join/XXXX",
  "/preview/abc/8080/",
  "/preview/",
  "/playground/",
  "/",
];

interface HttpCase {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer | string;
}

function httpCase(): HttpCase {
  let p = pick(PATHS);
  if (rand() < 0.25) p += "/" + encodeURIComponent(unicode(int(1, 20)));
  if (rand() < 0.05) p = "/api/" + "x".repeat(int(1000, 7000));
  if (rand() < 0.1) p += "?" + "q=" + encodeURIComponent(unicode(int(1, 100)));
  const method = pick(["GET", "POST", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"]);
  const headers: Record<string, string> = {};
  const origin = pick([server.url, server.url, "http://evil.example", "null", ""]);
  if (origin) headers.origin = origin;
  const cookie = pick([session.cookie, "shipshape_owner=forged.sig", "shipshape_owner=" + "a".repeat(int(1, 3000)), "", "a=b; shipshape_owner=%ZZ"]);
  if (cookie) headers.cookie = cookie;
  if (rand() < 0.5) headers["content-type"] = pick(["application/json", "text/plain", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"]);
  if (rand() < 0.1) headers["x-forwarded-for"] = pick(["1.2.3.4", "::1, 999.1.1.1", "x".repeat(500)]);
  let body: Buffer | string | undefined;
  if (method !== "GET" && method !== "HEAD") {
    body = pick<Buffer | string>([
      "",
      "{",
      "null",
      "[]",
      JSON.stringify({ fresh: weird() }),
      JSON.stringify({ fresh: true, extra: 1 }),
      JSON.stringify({ path: weird(), content: weird() }),
      JSON.stringify({ code: weird(), name: weird() }),
      '{"__proto__":{"admin":true},"fresh":"yes"}',
      deep(int(10, 20_000)),
      bytes(int(1, 3000)),
      "x".repeat(int(129 * 1024, 300 * 1024)), // over the 128 KiB body limit
      unicode(int(1, 500)),
    ]);
  }
  // Requests that would legitimately create, replace, end or grade a sandbox are not bad input:
  // keep the fuzz from sending them (the sandbox count must stay unchanged).
  let pathname = "";
  try {
    pathname = new URL(`http://x${p}`).pathname.replace(/\/+$/, "");
  } catch {
    /* not a path the server routes */
  }
  const sameOrigin = headers.origin === server.url;
  let validBody = false;
  try {
    const parsed = JSON.parse(typeof body === "string" && body !== "" ? body : "{}") as unknown;
    validBody =
      typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) &&
      Object.keys(parsed).every((k) => k === "fresh") && ["boolean", "undefined"].includes(typeof (parsed as { fresh?: unknown }).fresh);
  } catch {
    /* invalid JSON: bad input */
  }
  const creates = method === "POST" && pathname === "/api/sessions" && validBody;
  const ends = method === "DELETE" && pathname === "/api/sessions/current";
  const grades = method === "POST" && pathname.startsWith("/api/exercises/");
  if (sameOrigin && (creates || ends || grades)) headers.origin = "http://evil.example";
  return { method, path: p, headers, body };
}

async function fuzzHttp(c: HttpCase): Promise<string | undefined> {
  let res: Response;
  try {
    res = await fetch(server.url + c.path, {
      method: c.method,
      headers: c.headers,
      body: typeof c.body === "string" || c.body === undefined ? c.body : new Uint8Array(c.body),
      redirect: "manual",
      signal: AbortSignal.timeout(10_000),
    });
  } catch (e) {
    // A server may close a connection on a request it cannot parse (431, 400): not a crash.
    const alive = await fetch(`${server.url}/healthz`).then(() => true, () => false);
    return alive ? undefined : `server unreachable after ${c.method} ${c.path.slice(0, 80)}: ${String(e)}`;
  }
  const text = c.method === "HEAD" ? "" : await res.text();
  const where = `${c.method} ${c.path.slice(0, 100)} -> ${res.status}`;
  if (res.status >= 500 && res.status !== 503) return `${where}: server error ${text.slice(0, 200)}`;
  const api = new URL(server.url + c.path).pathname.startsWith("/api/");
  if (api && res.status >= 400 && c.method !== "HEAD") {
    try {
      const j = JSON.parse(text) as { error?: unknown; message?: unknown };
      if (typeof j.error !== "string" || typeof j.message !== "string" || j.message.length < 5) return `${where}: unclear error ${text.slice(0, 200)}`;
    } catch {
      return `${where}: not JSON: ${text.slice(0, 200)}`;
    }
  }
  return undefined;
}

async function inBatches<T>(n: number, width: number, run: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await run(i);
      }
    }),
  );
  return out;
}

describe(`fuzzing the server (seed ${SEED})`, () => {
  it("survives random and malformed input with clear errors, and leaks nothing", async () => {
    const namespace = server.env.SHIPSHAPE_NAMESPACE!;
    const sandboxesBefore = leftovers(namespace).containers;
    // A first, smaller round warms up (JIT, buffers, the fuzz shells' screen mirrors); growth is
    // measured over the second.
    await inBatches(80, 12, fuzzSocket);
    await inBatches(300, 12, async () => fuzzHttp(httpCase()));
    await sleep(6_000);
    const before = processStats(server.pid());

    const wsOutcomes = await inBatches(WS_CONNECTIONS, 12, fuzzSocket);
    const raw = await inBatches(40, 8, rawUpgrade);
    const httpProblems = (await inBatches(HTTP_REQUESTS, 12, async () => fuzzHttp(httpCase()))).filter((p): p is string => !!p);

    await sleep(6_000); // closed sockets and idle keep-alive connections (5 s) are gone on the server too
    const crashed = !existsSync(`/proc/${server.pid()}`);
    expect(crashed, `the server died (seed ${SEED}); its last output:\n${server.output().slice(-4_000)}`).toBe(false);
    const after = processStats(server.pid());
    const codes = new Map<number, number>();
    for (const o of wsOutcomes) if (o.close) codes.set(o.close.code, (codes.get(o.close.code) ?? 0) + 1);
    console.log(
      `seed ${SEED}: ${WS_CONNECTIONS} sockets (close codes ${JSON.stringify(Object.fromEntries(codes))}), ${raw.length} raw upgrades, ` +
        `${HTTP_REQUESTS} HTTP requests; server rss ${before.rssMiB} -> ${after.rssMiB} MiB, sockets ${before.sockets} -> ${after.sockets}, fds ${before.fds} -> ${after.fds}`,
    );

    expect(wsOutcomes.flatMap((o) => o.protocolViolations), `seed ${SEED}`).toEqual([]);
    expect(httpProblems, `seed ${SEED}`).toEqual([]);
    for (const answer of raw) if (answer) expect(answer, `seed ${SEED}`).toMatch(/^HTTP\/1\.1 (400|403|404|431|413|426)/);
    // Still up, still healthy, the learner's shell still answers.
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    expect(await owner.run("echo still-here")).toContain("still-here");
    // Nothing grew without bound; no sandbox was made or lost.
    expect(after.rssMiB - before.rssMiB, `rss grew (seed ${SEED})`).toBeLessThan(64);
    expect(after.sockets - before.sockets, `open sockets grew (seed ${SEED})`).toBeLessThanOrEqual(4);
    expect(leftovers(namespace).containers).toBe(sandboxesBefore);
    expect(server.output(), `seed ${SEED}`).not.toContain("unhandled promise rejection");
  }, 240_000);
});

describe("lesson content with mistakes", () => {
  it("stops the server at start with the file and line of a broken exercise", () => {
    const content = mkdtempSync(path.join(tmpdir(), "shipshape-broken-content-"));
    mkdirSync(path.join(content, "exercises"), { recursive: true });
    cpSync(path.join(repoRoot, "content", "exercises", "run-and-stop.yaml"), path.join(content, "exercises", "run-and-stop.yaml"));
    writeFileSync(
      path.join(content, "exercises", "broken-check.yaml"),
      ["id: broken-check", "lesson: first-containers", "title: Broken on purpose", "tasks:", "  - id: t1", "    title: A task", "    check: { kind: container, state: sleeping }", "solution: docker run hello-world", ""].join("\n"),
    );
    const env = testEnv({ SHIPSHAPE_CONTENT_DIR: content });
    const r = spawnSync(process.execPath, [path.join(repoRoot, "sandbox-server/src/main.ts")], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/broken-check\.yaml:7: tasks\.0\.check/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // a sentence, not a stack trace
  });
});
