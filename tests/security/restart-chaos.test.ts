/**
 * Issue 13, critical: a restart must never hand one learner's sandbox to another. The server runs
 * as a real process; learners (claimed from the warm pool, started fresh, seated in a workshop
 * from its reserve) work, the server is stopped with SIGTERM or killed with SIGKILL and started
 * again on the same data directory, several times, and new learners arrive in between. After
 * every restart each learner must find exactly their own sandbox (their file, not anyone else's),
 * every new learner a fresh sandbox and a prompt, no sandbox may be bound to two sessions, and at
 * the end nothing of the server's namespace may be left.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openSession, TestTerminal, type Session } from "../support/terminal.ts";
import { spawnServer, type ServerProcess } from "./processes.ts";
import { sleep } from "./support.ts";

const ADMIN_SECRET = "restart-chaos-admin-secret-7c1e";
const POOL = 2;

interface Learner {
  name: string;
  session: Session;
  sandboxId: string;
}

let server: ServerProcess;
let namespace: string;
const learners: Learner[] = [];
/** Every sandbox id ever bound to a learner here: a new learner's must be none of them. */
const everBound = new Set<string>();

/** The server's own records, read as an operator would (sqlite3 on the data directory), never written. */
function query<T = Record<string, unknown>>(sql: string, ...params: Array<string | null>): T[] {
  const db = new DatabaseSync(path.join(server.env.SHIPSHAPE_DATA_DIR!, "shipshape.db"), { readOnly: true });
  try {
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}

const sandboxOf = (sessionId: string) => query<{ sandbox_id: string | null }>("SELECT sandbox_id FROM sessions WHERE id = ?", sessionId)[0]?.sandbox_id ?? null;

/** Containers of the server's namespace (sandboxes and anything else it made), full ids. */
const containers = () =>
  execFileSync("docker", ["ps", "-aq", "--no-trunc", "--filter", `label=org.shipshape.namespace=${namespace}`], { encoding: "utf8" })
    .split("\n")
    .filter(Boolean);

/** The namespace's sandbox containers with the labels they were created with, as `docker ps` shows them. */
function sandboxes(): Array<{ id: string; session: string; workshop: string }> {
  return execFileSync(
    "docker",
    [
      "ps", "-a", "--no-trunc",
      "--filter", `label=org.shipshape.namespace=${namespace}`,
      "--filter", "label=org.shipshape.role=sandbox",
      "--format", '{{.ID}}\t{{.Label "org.shipshape.session"}}\t{{.Label "org.shipshape.workshop"}}',
    ],
    { encoding: "utf8" },
  )
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [id = "", session = "", workshop = ""] = line.split("\t");
      return { id, session, workshop };
    });
}

/**
 * Warm sandboxes waiting for a learner, as the test sees them: labelled "pool" and bound to no
 * session in the server's records (learners' pool sandboxes keep the label). `workshop` "" is the
 * general pool.
 */
function unclaimedPool(workshop?: string): string[] {
  const bound = new Set(query<{ sandbox_id: string }>("SELECT sandbox_id FROM sessions WHERE sandbox_id IS NOT NULL").map((r) => r.sandbox_id));
  return sandboxes()
    .filter((s) => s.session.startsWith("pool-") && !bound.has(s.id) && (workshop === undefined || s.workshop === workshop))
    .map((s) => s.id);
}

async function until<T>(read: () => T | Promise<T>, ok: (v: T) => boolean, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await read();
    if (ok(last)) return last;
    await sleep(300);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(last)}`);
}

async function call(method: string, route: string, body?: unknown, cookie?: string): Promise<{ status: number; body: any; cookie: string | undefined }> {
  const res = await fetch(`${server.url}${route}`, {
    method,
    headers: { origin: server.url, "content-type": "application/json", ...(cookie ? { cookie } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, cookie: res.headers.get("set-cookie")?.split(";")[0] };
}

const plain = (t: TestTerminal) => t.output.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "");
const withPrompt = (t: TestTerminal, timeoutMs: number, who: string) =>
  t.until(() => /sandbox:[^\n]*[#$] $/.test(plain(t)), timeoutMs, `${who}'s prompt`);

/**
 * The name in /learner-marker, or "none" when the file does not exist. Printed as [name]: the
 * typed command (echoed, maybe redrawn) contains "[%s]", never a bracketed name.
 */
async function markerIn(t: TestTerminal): Promise<string> {
  const out = plain(t).length;
  await t.run(`printf '[%s]\\n' "$(cat /learner-marker 2>/dev/null || echo none)"`);
  return /\[([a-z0-9-]+)\]/.exec(plain(t).slice(out))?.[1] ?? "unreadable";
}

/**
 * A new learner: their sandbox must be one no learner ever had, their shell must show a prompt
 * and hold no one's file. They leave their own file in it.
 */
async function arrive(name: string, first: Session): Promise<Learner> {
  let session = first;
  let t = new TestTerminal(session);
  try {
    await t.ready(120_000).catch(async (e: Error) => {
      // A start can fail on a saturated machine (the inner engine dies while booting); the page
      // then offers a new sandbox. Once, as a learner would: that is no hand-over, and the new
      // sandbox must pass every check below.
      if (t.closed?.code !== 4011 || !/while it was starting/.test(t.closed.reason)) throw e;
      console.log(`${name}: ${t.closed.reason} Starting a new one.`);
      session = await openSession(server.url, session.cookie, { fresh: true });
      t = new TestTerminal(session);
      await t.ready(120_000);
    });
    await withPrompt(t, 30_000, `newcomer ${name}`);
    const sandboxId = sandboxOf(session.sessionId);
    expect(sandboxId, `${name} has a sandbox`).toBeTruthy();
    expect(everBound.has(sandboxId!), `${name} was handed a sandbox another learner had (${sandboxId})`).toBe(false);
    expect(await markerIn(t), `${name}'s new sandbox already holds a learner's file`).toBe("none");
    await t.run(`echo ${name} > /learner-marker`);
    everBound.add(sandboxId!);
    const learner = { name, session, sandboxId: sandboxId! };
    learners.push(learner);
    return learner;
  } finally {
    t.close();
  }
}

/** A returning learner: the same sandbox as before, a prompt, and their own file only. */
async function comeBack(learner: Learner): Promise<void> {
  expect(sandboxOf(learner.session.sessionId), `${learner.name}'s session still names their sandbox`).toBe(learner.sandboxId);
  const t = new TestTerminal(learner.session);
  try {
    await t.ready(60_000);
    await withPrompt(t, 30_000, `returning ${learner.name}`);
    expect(await markerIn(t), `${learner.name} found another learner's file in their sandbox`).toBe(learner.name);
  } finally {
    t.close();
  }
}

/** No sandbox bound to two sessions (live or ended), and none listed as free while a session holds it. */
function assertNoSharing(): void {
  expect(query("SELECT sandbox_id FROM sessions WHERE sandbox_id IS NOT NULL GROUP BY sandbox_id HAVING COUNT(*) > 1")).toEqual([]);
  expect(query("SELECT p.sandbox_id FROM pool_sandboxes p JOIN sessions s ON s.sandbox_id = p.sandbox_id")).toEqual([]);
  const live = query<{ sandbox_id: string }>("SELECT sandbox_id FROM sessions WHERE state != 'ended' AND sandbox_id IS NOT NULL").map((r) => r.sandbox_id);
  expect(live.sort()).toEqual(learners.map((l) => l.sandboxId).sort());
}

/** Warm sandboxes ready in a pool (the general one for null), as the server recorded them. */
const readyInPool = (workshopId: string | null) =>
  query("SELECT sandbox_id FROM pool_sandboxes WHERE workshop_id IS ?", workshopId).length;

/**
 * Waits until the general pool holds `POOL` warm sandboxes and nothing is starting, then: every
 * sandbox of the namespace is a learner's or one the server recorded as a free pool member, and
 * every recorded member is such a warm sandbox. Nothing stray (an orphan, a sandbox of nobody's).
 */
async function assertPoolsSettled(): Promise<void> {
  const recorded = () => query<{ sandbox_id: string; workshop_id: string | null }>("SELECT sandbox_id, workshop_id FROM pool_sandboxes");
  const view = () => {
    const members = recorded();
    return {
      general: members.filter((m) => m.workshop_id === null).length,
      recorded: members.map((m) => m.sandbox_id).sort(),
      unclaimed: unclaimedPool().sort(),
      sandboxes: sandboxes().length,
    };
  };
  const settled = await until(
    view,
    (v) => v.general === POOL && JSON.stringify(v.recorded) === JSON.stringify(v.unclaimed) && v.sandboxes === learners.length + v.recorded.length,
    120_000,
    `a full pool, every warm sandbox recorded and ready, and no sandbox beside the learners' and the warm ones`,
  );
  expect(new Set(sandboxes().map((s) => s.id))).toEqual(new Set([...learners.map((l) => l.sandboxId), ...settled.recorded]));
}

const handOverLines = () => server.output().split("\n").filter((l) => /two sessions are bound|refused to (hand out|bind)|lists a sandbox as pooled/.test(l));

describe("restart chaos: learners keep their own sandboxes across restarts", () => {
  let instructor: string;
  let workshop: { id: string; code: string };

  beforeAll(async () => {
    // A workshop needs a lesson; the security suite's own content folder is empty on purpose.
    const content = mkdtempSync(path.join(tmpdir(), "shipshape-chaos-content-"));
    mkdirSync(path.join(content, "exercises"));
    mkdirSync(path.join(content, "lessons"));
    writeFileSync(path.join(content, "lessons", "chaos.mdx"), "---\ntitle: Chaos\norder: 1\n---\n\nA lesson.\n");
    server = await spawnServer({
      SHIPSHAPE_CONTENT_DIR: content,
      SHIPSHAPE_WARM_POOL: String(POOL),
      SHIPSHAPE_ADMIN_SECRET: ADMIN_SECRET,
      SHIPSHAPE_LOG_LEVEL: "info",
      SHIPSHAPE_REAP_INTERVAL: "5s",
    });
    namespace = server.env.SHIPSHAPE_NAMESPACE!;
    instructor = (await call("POST", "/api/instructor/session", { secret: ADMIN_SECRET })).cookie!;
    expect(instructor).toBeTruthy();
  }, 120_000);

  afterAll(async () => {
    if (server) {
      const log = path.join(tmpdir(), `restart-chaos-${namespace}.log`);
      writeFileSync(log, server.output());
      console.log(`server log: ${log}`);
    }
    await server?.stop(); // SIGTERM, then removes its data directory
    if (namespace) {
      // Whatever a failed run left: removed here, so it cannot pile up (the test asserts none is left when it passes).
      const left = containers();
      if (left.length) execFileSync("docker", ["rm", "-f", "-v", ...left]);
    }
  }, 60_000);

  it("keeps every learner on their own sandbox through SIGTERM and SIGKILL restarts, gives newcomers fresh ones, leaks nothing", async () => {
    const started = Date.now();
    // Round 0: two learners take the pool's two warm sandboxes, one more starts fresh (the pool
    // is still refilling), one is seated in a workshop from its reserve.
    await until(() => readyInPool(null), (n) => n === POOL, 120_000, "a full warm pool");
    const created = await call("POST", "/api/workshops", { title: "Chaos", lessons: ["chaos"], capacity: 5, durationMinutes: 90 }, instructor);
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    workshop = created.body;
    expect((await call("POST", `/api/workshops/${workshop.id}/prewarm`, { count: 2 }, instructor)).status).toBe(200);
    await until(() => readyInPool(workshop.id), (n) => n === 2, 120_000, "the workshop's reserve");

    const pooledA = await openSession(server.url);
    const pooledB = await openSession(server.url);
    const freshC = await openSession(server.url);
    const joinedW = await call("POST", "/api/workshops/join", { code: workshop.code, name: "Wren" });
    expect(joinedW.status, JSON.stringify(joinedW.body)).toBe(200);
    const seatW = await openSession(server.url, joinedW.cookie);
    await Promise.all([arrive("pooled-a", pooledA), arrive("pooled-b", pooledB), arrive("fresh-c", freshC), arrive("workshop-w", seatW)]);
    // The premise of the bug: three sandboxes came from a pool, so their labels still say "pool".
    const labels = new Map(sandboxes().map((s) => [s.id, s.session]));
    expect(Object.fromEntries(learners.map((l) => [l.name, labels.get(l.sandboxId)?.startsWith("pool-")]))).toEqual({
      "pooled-a": true,
      "pooled-b": true,
      "fresh-c": false,
      "workshop-w": true,
    });
    assertNoSharing();

    // Three restarts in a row, alternating a clean stop and a crash; newcomers after each.
    const restarts: Array<"SIGTERM" | "SIGKILL"> = ["SIGTERM", "SIGKILL", "SIGTERM"];
    let newcomer = 0;
    for (const [round, how] of restarts.entries()) {
      // A full pool at the crash: its recorded members outlive it and must be adopted, not the
      // learners' sandboxes. A clean stop comes whenever: warm sandboxes still starting then are
      // left behind by the old server and must be reaped by the new one.
      if (how === "SIGKILL") await assertPoolsSettled();
      if (how === "SIGTERM") await server.terminate();
      else await server.crash();
      await server.start();

      // Newcomers first: with the old label-based adoption, they were the ones handed a learner's sandbox.
      // Two after the crash, to take both warm sandboxes it adopted; one after a clean stop.
      const newcomers = await Promise.all(Array.from({ length: how === "SIGKILL" ? 2 : 1 }, () => openSession(server.url)));
      const workshopJoin = round === 0 ? await call("POST", "/api/workshops/join", { code: workshop.code, name: "Wade" }) : undefined;
      if (workshopJoin) expect(workshopJoin.status, JSON.stringify(workshopJoin.body)).toBe(200);
      const seat = workshopJoin ? await openSession(server.url, workshopJoin.cookie) : undefined;
      const existing = learners.slice();
      await Promise.all([
        ...newcomers.map((s) => arrive(`new-${++newcomer}`, s)),
        ...(seat ? [arrive("workshop-v", seat)] : []),
        ...existing.map((l) => comeBack(l)),
      ]);
      assertNoSharing();
      console.log(`[restart ${round + 1}, ${how}] ${learners.length} learners, each on their own sandbox (${Math.round((Date.now() - started) / 1000)} s)`);
    }
    expect(server.output()).toMatch(/adopted warm sandbox/); // the crash's recorded pool members were taken back
    expect(handOverLines()).toEqual([]);

    // The workshop ends, every other learner ends their sandbox, the server stops: nothing of its namespace is left.
    expect((await call("POST", `/api/workshops/${workshop.id}/end`, undefined, instructor)).status).toBe(200);
    for (const l of learners.filter((l) => !l.name.startsWith("workshop-"))) {
      const res = await fetch(`${server.url}/api/sessions/current`, { method: "DELETE", headers: { origin: server.url, cookie: l.session.cookie } });
      expect(res.status, `${l.name} ends their sandbox`).toBe(204);
    }
    learners.length = 0;
    await assertPoolsSettled(); // nothing still starting when it stops
    await server.terminate();
    const volumes = () => execFileSync("docker", ["volume", "ls", "-q", "--filter", `label=org.shipshape.namespace=${namespace}`], { encoding: "utf8" }).split("\n").filter(Boolean);
    await until(() => ({ containers: containers().length, volumes: volumes().length }), (v) => v.containers === 0 && v.volumes === 0, 30_000, "no container or volume left");
    await server.start(); // for afterAll's clean stop
  }, 300_000);
});
