import type { SqliteStore } from "../../sandbox-server/src/store/store.ts";
import { execFileSync } from "node:child_process";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../sandbox-server/src/app.ts";
import { startTestApp, testEnv } from "../support/server.ts";
import { TestTerminal } from "../support/terminal.ts";

const ADMIN_SECRET = "integration-admin-secret-4f9a";

interface Reply {
  status: number;
  body: any;
  text: string;
  headers: Headers;
}

/** fetch with a cookie and the site's Origin unless told otherwise. */
async function call(
  app: App,
  method: string,
  path: string,
  options: { cookie?: string; body?: unknown; origin?: string | null } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (options.cookie) headers.cookie = options.cookie;
  if (options.origin !== null) headers.origin = options.origin ?? app.url;
  const res = await fetch(`${app.url}${path}`, {
    method,
    headers,
    redirect: "manual",
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
  });
  const text = await res.text();
  let body: any = undefined;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, body, text, headers: res.headers };
}

const cookieOf = (reply: Reply) => reply.headers.get("set-cookie")?.split(";")[0];

async function signIn(app: App): Promise<string> {
  const reply = await call(app, "POST", "/api/instructor/session", { body: { secret: ADMIN_SECRET } });
  expect(reply.status).toBe(200);
  return cookieOf(reply)!;
}

/** A learner's browser: joins, and keeps the owner cookie the server set. */
async function join(app: App, code: string, name: string, cookie?: string): Promise<{ cookie: string; body: any; status: number }> {
  const reply = await call(app, "POST", "/api/workshops/join", { body: { code, name }, ...(cookie ? { cookie } : {}) });
  return { cookie: cookie ?? cookieOf(reply)!, body: reply.body, status: reply.status };
}

async function openLearnerSession(app: App, cookie: string) {
  const reply = await call(app, "POST", "/api/sessions", { cookie, body: {} });
  return reply;
}

const workshopSandboxes = (namespace: string, workshopId: string) =>
  execFileSync(
    "docker",
    ["ps", "-aq", "--filter", `label=org.shipshape.namespace=${namespace}`, "--filter", `label=org.shipshape.workshop=${workshopId}`, "--filter", "label=org.shipshape.role=sandbox"],
    { encoding: "utf8" },
  )
    .split("\n")
    .filter(Boolean);

async function until<T>(probe: () => T | Promise<T>, ok: (value: T) => boolean, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await probe();
    if (ok(last)) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
}

/** Parses RFC 4180 CSV (quoted fields, doubled quotes, CRLF). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      row.push(field);
      field = "";
    } else if (c === "\r" && text[i + 1] === "\n") {
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
      i++;
    } else field += c;
  }
  if (field || row.length) rows.push([...row, field]);
  return rows;
}

describe("classroom workshops API", () => {
  let app: App;
  let env: Record<string, string>;
  let instructor: string;

  beforeAll(async () => {
    env = testEnv({ SHIPSHAPE_ADMIN_SECRET: ADMIN_SECRET });
    app = await startTestApp(env);
    instructor = await signIn(app);
  });

  afterAll(async () => {
    for (const s of (await app?.runtime.list()) ?? []) await app.runtime.destroy(s.id);
    await app?.close();
  });

  const createWorkshop = async (overrides: Record<string, unknown> = {}) => {
    const reply = await call(app, "POST", "/api/workshops", {
      cookie: instructor,
      body: { title: "Containers 101", lessons: ["first-containers"], capacity: 5, durationMinutes: 90, ...overrides },
    });
    expect(reply.status, reply.text).toBe(201);
    return reply.body as { id: string; code: string; joinPath: string };
  };

  it("signs instructors in with the admin secret only, into an HttpOnly, SameSite=Strict cookie", async () => {
    const wrong = await call(app, "POST", "/api/instructor/session", { body: { secret: "not-it" } });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get("set-cookie")).toBeNull();
    const right = await call(app, "POST", "/api/instructor/session", { body: { secret: ADMIN_SECRET } });
    expect(right.headers.get("set-cookie")).toMatch(/^__Host-shipshape_instructor=[^;]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200; Secure$/);
    expect((await call(app, "GET", "/api/instructor/session", { cookie: cookieOf(right)! })).body).toEqual({
      signedIn: true,
      instructor: { id: "admin", name: "Admin", role: "admin" },
    });
    expect((await call(app, "GET", "/api/instructor/session")).body).toEqual({ signedIn: false });
  });

  it("requires the instructor cookie for every instructor route; a forged one does not do", async () => {
    const w = await createWorkshop();
    const forged = `__Host-shipshape_instructor=${encodeURIComponent("instructor:99999999999999:forgedsignin0000.AAAA")}`;
    const routes: Array<[string, string, unknown?]> = [
      ["GET", "/api/workshops"],
      ["POST", "/api/workshops", { title: "x", lessons: ["first-containers"], capacity: 1, durationMinutes: 30 }],
      ["GET", "/api/instructor/lessons"],
      ["GET", `/api/workshops/${w.id}`],
      ["PATCH", `/api/workshops/${w.id}`, { capacity: 9 }],
      ["POST", `/api/workshops/${w.id}/prewarm`, { count: 1 }],
      ["POST", `/api/workshops/${w.id}/messages`, { message: "hi" }],
      ["POST", `/api/workshops/${w.id}/end`],
      ["GET", `/api/workshops/${w.id}/grades.csv`],
      ["GET", `/api/workshops/${w.id}/events`],
    ];
    for (const [method, path, body] of routes) {
      for (const cookie of [undefined, forged]) {
        const reply = await call(app, method, path, { ...(cookie ? { cookie } : {}), ...(body ? { body } : {}) });
        expect(reply.status, `${method} ${path} with ${cookie ? "a forged cookie" : "no cookie"}`).toBe(401);
      }
    }
    // Nothing above changed the workshop.
    const dashboard = await call(app, "GET", `/api/workshops/${w.id}`, { cookie: instructor });
    expect(dashboard.body.workshop.capacity).toBe(5);
    expect(dashboard.body.workshop.endedAt).toBeNull();
    expect(dashboard.body.messages).toEqual([]);
  });

  it("refuses state-changing requests and the watch socket from a foreign origin, even with the cookie", async () => {
    const w = await createWorkshop();
    const evil = "http://evil.example";
    expect((await call(app, "POST", "/api/workshops", { cookie: instructor, origin: evil, body: { title: "x", lessons: ["first-containers"], capacity: 1, durationMinutes: 30 } })).status).toBe(403);
    expect((await call(app, "POST", `/api/workshops/${w.id}/end`, { cookie: instructor, origin: evil })).status).toBe(403);
    expect((await call(app, "POST", `/api/workshops/${w.id}/messages`, { cookie: instructor, origin: null, body: { message: "x" } })).status).toBe(403);
    expect((await call(app, "POST", "/api/instructor/session", { origin: evil, body: { secret: ADMIN_SECRET } })).status).toBe(403);
    expect((await call(app, "POST", "/api/workshops/join", { origin: evil, body: { code: w.code, name: "Mallory" } })).status).toBe(403);
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${app.url.replace("http", "ws")}/ws/watch?workshop=${w.id}&learner=abc&terminal=main`, {
        headers: { origin: evil, cookie: instructor },
      });
      ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      ws.on("open", () => resolve(101));
      ws.on("error", () => {});
    });
    expect(status).toBe(403);
    expect((await call(app, "GET", `/api/workshops/${w.id}`, { cookie: instructor })).body.workshop.endedAt).toBeNull();
  });

  it("validates a new workshop and gives it an unambiguous six-character code and a join link", async () => {
    const bad = await call(app, "POST", "/api/workshops", {
      cookie: instructor,
      body: { title: "x", lessons: ["no-such-lesson"], capacity: 5, durationMinutes: 60 },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toContain('"no-such-lesson"');
    const w = await createWorkshop();
    expect(w.code).toMatch(/^[A-HJ-NP-Z2-9]{6}$/);
    expect(w.joinPath).toBe(`/join/${w.code}`);
    const link = await call(app, "GET", `/join/${w.code.toLowerCase()}`);
    expect(link.status).toBe(302);
    expect(link.headers.get("location")).toBe(`/join/?code=${w.code}`);
    const lessons = await call(app, "GET", "/api/instructor/lessons", { cookie: instructor });
    expect(lessons.body.lessons.find((l: { slug: string }) => l.slug === "first-containers").exercises).toContainEqual({
      id: "run-and-stop",
      title: "Start, name and stop containers",
    });
  });

  it("does not show a learner the dashboard, the gradebook or a terminal", async () => {
    const w = await createWorkshop();
    const learner = await join(app, w.code, "Curious Learner");
    expect(learner.status).toBe(200);
    for (const path of [`/api/workshops/${w.id}`, `/api/workshops/${w.id}/grades.csv`, `/api/workshops/${w.id}/events`, "/api/workshops"]) {
      expect((await call(app, "GET", path, { cookie: learner.cookie })).status, path).toBe(401);
    }
    const dashboard = await call(app, "GET", `/api/workshops/${w.id}`, { cookie: instructor });
    const memberId = dashboard.body.learners[0].memberId as string;
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${app.url.replace("http", "ws")}/ws/watch?workshop=${w.id}&learner=${memberId}&terminal=main`, {
        headers: { origin: app.url, cookie: learner.cookie },
      });
      ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      ws.on("open", () => resolve(101));
      ws.on("error", () => {});
    });
    expect(status).toBe(403);
    await call(app, "DELETE", "/api/workshops/mine", { cookie: learner.cookie });
  });

  it("seats learners up to capacity, queues the rest with their place, and lets the next in when someone leaves", async () => {
    const w = await createWorkshop({ capacity: 1 });
    const ana = await join(app, w.code, "Ana");
    expect(ana.body.you).toMatchObject({ name: "Ana", status: "admitted", position: null });
    const ben = await join(app, ` ${w.code.toLowerCase().slice(0, 3)}-${w.code.slice(3)} `, "Ben");
    expect(ben.body.you).toMatchObject({ name: "Ben", status: "queued", position: 1, queueLength: 1 });
    // A queued learner's terminal waits, told where they are, rather than getting a sandbox.
    const waiting = await openLearnerSession(app, ben.cookie);
    expect(waiting.status).toBe(429);
    expect(waiting.body.message).toContain("number 1 in the queue");
    // Names are unique in a workshop, whatever their case.
    const dup = await join(app, w.code, "  ana ");
    expect(dup.status).toBe(400);
    const session = await openLearnerSession(app, ana.cookie);
    expect(session.status).toBe(200);
    await until(() => workshopSandboxes(env.SHIPSHAPE_NAMESPACE!, w.id).length, (n) => n === 1, 30_000, "Ana's sandbox, labelled with the workshop");

    expect((await call(app, "DELETE", "/api/workshops/mine", { cookie: ana.cookie })).status).toBe(204);
    const benNow = await call(app, "GET", "/api/workshops/mine", { cookie: ben.cookie });
    expect(benNow.body.you.status).toBe("admitted");
    expect((await openLearnerSession(app, ben.cookie)).status).toBe(200);
    const dashboard = await call(app, "GET", `/api/workshops/${w.id}`, { cookie: instructor });
    expect(dashboard.body.workshop.counts).toMatchObject({ admitted: 1, queued: 0, left: 1 });
    // More seats let the queue in at once.
    const cy = await join(app, w.code, "Cy");
    expect(cy.body.you.status).toBe("queued");
    await call(app, "PATCH", `/api/workshops/${w.id}`, { cookie: instructor, body: { capacity: 2 } });
    expect((await call(app, "GET", "/api/workshops/mine", { cookie: cy.cookie })).body.you.status).toBe("admitted");
    await call(app, "POST", `/api/workshops/${w.id}/end`, { cookie: instructor });
  });

  it("pre-warms labelled sandboxes that its learners claim first", async () => {
    const w = await createWorkshop({ capacity: 2 });
    await call(app, "POST", `/api/workshops/${w.id}/prewarm`, { cookie: instructor, body: { count: 2 } });
    await until(
      async () => (await call(app, "GET", `/api/workshops/${w.id}`, { cookie: instructor })).body.workshop.warm.ready,
      (n) => n === 2,
      60_000,
      "two warm sandboxes",
    );
    const reserved = new Set(workshopSandboxes(env.SHIPSHAPE_NAMESPACE!, w.id));
    expect(reserved.size).toBe(2);
    const dee = await join(app, w.code, "Dee");
    const session = await openLearnerSession(app, dee.cookie);
    expect(session.body.state).toBe("ready"); // claimed from the reserve: no start to wait for
    const sandboxId = (await app.store.sessions.get(session.body.sessionId))!.sandboxId!;
    expect([...reserved].some((short) => sandboxId.startsWith(short))).toBe(true);
    const after = (await call(app, "GET", `/api/workshops/${w.id}`, { cookie: instructor })).body.workshop.warm;
    expect(after).toMatchObject({ target: 2, ready: 1 }); // one seat left, one sandbox kept for it
    await call(app, "POST", `/api/workshops/${w.id}/end`, { cookie: instructor });
    await until(() => workshopSandboxes(env.SHIPSHAPE_NAMESPACE!, w.id).length, (n) => n === 0, 30_000, "no sandbox left");
  });

  it("lets the instructor watch a learner's shell read-only and message every learner", async () => {
    const w = await createWorkshop();
    const eve = await join(app, w.code, "Eve");
    const session = (await openLearnerSession(app, eve.cookie)).body as { sessionId: string; token: string };
    const terminal = new TestTerminal({ base: app.url, cookie: eve.cookie, sessionId: session.sessionId, token: session.token });
    await terminal.ready(60_000);
    await terminal.run("echo learner-wrote-$((6*7))");

    const memberId = (await call(app, "GET", `/api/workshops/${w.id}`, { cookie: instructor })).body.learners[0].memberId;
    const viewer = new WebSocket(`${app.url.replace("http", "ws")}/ws/watch?workshop=${w.id}&learner=${memberId}&terminal=main`, {
      headers: { origin: app.url, cookie: instructor },
    });
    let seen = "";
    const messages: Array<Record<string, unknown>> = [];
    viewer.on("message", (data: Buffer, isBinary: boolean) => {
      if (isBinary) seen += data.toString("utf8");
      else messages.push(JSON.parse(data.toString("utf8")));
    });
    await until(() => messages.some((m) => m.type === "ready"), Boolean, 15_000, "the viewer to be ready");
    expect(messages[0]).toMatchObject({ type: "size", cols: 120, rows: 30 });
    expect(seen).toContain("learner-wrote-42"); // the replayed screen

    // Keystrokes from the viewer never reach the shell.
    viewer.send(Buffer.from("touch /tmp/instructor-typed; echo instructor-typed\r"));
    viewer.send(JSON.stringify({ type: "hello", token: session.token, terminal: "main" }));
    await new Promise((r) => setTimeout(r, 500));
    const check = await terminal.run("ls /tmp/instructor-typed 2>&1; echo after-$((1+1))");
    expect(check).toContain("No such file");
    expect(terminal.output).not.toContain("instructor-typed\r\n");
    await until(() => seen, (s) => s.includes("after-2"), 5_000, "live output in the viewer");

    const sent = await call(app, "POST", `/api/workshops/${w.id}/messages`, { cookie: instructor, body: { message: "Break until 11:00" } });
    expect(sent.body).toEqual({ delivered: 1 });
    const notice = await terminal.waitForMessage("notice");
    expect(notice).toMatchObject({ code: "workshop_message", message: "Message from your instructor: Break until 11:00" });
    const mine = await call(app, "GET", "/api/workshops/mine", { cookie: eve.cookie });
    expect(mine.body.messages.map((m: { message: string }) => m.message)).toEqual(["Break until 11:00"]);

    await call(app, "POST", `/api/workshops/${w.id}/end`, { cookie: instructor });
    await terminal.waitForClose(15_000);
    await until(() => viewer.readyState, (s) => s === WebSocket.CLOSED, 15_000, "the viewer to close");
  });

  it("exports the gradebook as CSV with quoting and formula injection defused, frozen when the workshop ends", async () => {
    const w = await createWorkshop();
    const names = ['=HYPERLINK("http://x.example","Hi")', "Doe, Jo", "+1 (555) 0100", "@SUM(A1)", "Zoë"];
    const learners = [];
    for (const name of names) {
      const learner = await join(app, w.code, name);
      expect(learner.status, JSON.stringify(learner.body)).toBe(200);
      learners.push(learner);
    }
    const zoe = learners[4]!;
    const session = await openLearnerSession(app, zoe.cookie);
    await until(async () => (await call(app, "GET", "/api/sessions/current", { cookie: zoe.cookie })).body.state, (s) => s === "ready", 60_000, "Zoë's sandbox");
    const checked = await call(app, "POST", "/api/exercises/run-and-stop/check", { cookie: zoe.cookie });
    expect(checked.status, checked.text).toBe(200);
    expect(checked.body.passed).toBe(false);
    expect(session.status).toBe(200);

    const reply = await call(app, "GET", `/api/workshops/${w.id}/grades.csv`, { cookie: instructor });
    expect(reply.status).toBe(200);
    expect(reply.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    expect(reply.headers.get("content-disposition")).toMatch(/^attachment; filename="containers-101-[a-z2-9]{6}-grades\.csv"$/);
    // A UTF-8 byte-order mark first, for Excel (fetch's text() drops it).
    const raw = new Uint8Array(await (await fetch(`${app.url}/api/workshops/${w.id}/grades.csv`, { headers: { cookie: instructor } })).arrayBuffer());
    expect([...raw.slice(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    expect(reply.text).toContain('"\'=HYPERLINK(""http://x.example"",""Hi"")"');
    const rows = parseCsv(reply.text);
    expect(rows[0]).toEqual(["learner", "exercise", "task", "verdict", "time"]);
    const all = rows.slice(1);
    const columns = (await call(app, "GET", `/api/workshops/${w.id}`, { cookie: instructor })).body.exercises as Array<{ tasks: unknown[] }>;
    const tasks = columns.reduce((n, e) => n + e.tasks.length, 0);
    expect(all).toHaveLength(names.length * tasks); // every learner × every task of the lesson's exercises
    expect(all.every((r) => r.length === 5)).toBe(true);
    const body = all.filter((r) => r[1] === "run-and-stop");
    expect(body).toHaveLength(names.length * 2);
    const learnerNames = new Set(body.map((r) => r[0]));
    expect(learnerNames).toEqual(new Set(["'=HYPERLINK(\"http://x.example\",\"Hi\")", "Doe, Jo", "'+1 (555) 0100", "'@SUM(A1)", "Zoë"]));
    for (const r of body) expect(r[0]).not.toMatch(/^[=+\-@]/);
    const zoeRows = body.filter((r) => r[0] === "Zoë");
    expect(zoeRows.map((r) => [r[1], r[2], r[3]])).toEqual([
      ["run-and-stop", "cache-stopped", "failed"],
      ["run-and-stop", "busybox-said", "failed"],
    ]);
    expect(Date.parse(zoeRows[0]![4]!)).toBeGreaterThan(Date.now() - 120_000);
    expect(body.filter((r) => r[0] === "Doe, Jo").every((r) => r[3] === "not attempted" && r[4] === "")).toBe(true);

    // Ending freezes the grades: nothing recorded for the workshop afterwards counts, or is even stored.
    await call(app, "POST", `/api/workshops/${w.id}/end`, { cookie: instructor });
    await app.store.results.insert({ ownerId: "late", sessionId: "late", workshopId: w.id, exerciseId: "run-and-stop", taskId: "busybox-said", passed: true, message: "", at: Date.now() });
    expect((app.store as SqliteStore).db.prepare("SELECT COUNT(*) AS n FROM results WHERE owner_id = 'late'").get()!.n).toBe(0);
    const after = await call(app, "GET", `/api/workshops/${w.id}/grades.csv`, { cookie: instructor });
    expect(after.text).toBe(reply.text);
    expect(workshopSandboxes(env.SHIPSHAPE_NAMESPACE!, w.id)).toEqual([]);
    const again = await join(app, w.code, "Late Comer");
    expect(again.status).toBe(404);
    expect(again.body.message).toContain("has ended");
  });

  it("ends by itself when its time is up, counted from the first learner let in", async () => {
    const w = await createWorkshop({ durationMinutes: 5 });
    const before = (await call(app, "GET", `/api/workshops/${w.id}`, { cookie: instructor })).body.workshop;
    expect(before).toMatchObject({ startedAt: null, endsAt: null });
    await join(app, w.code, "Ivy");
    const started = (await call(app, "GET", `/api/workshops/${w.id}`, { cookie: instructor })).body.workshop;
    expect(started.endsAt - started.startedAt).toBe(5 * 60_000);
    await until(() => workshopSandboxes(env.SHIPSHAPE_NAMESPACE!, w.id).length, (n) => n === 1, 30_000, "Ivy's sandbox");
    // Five minutes pass (the clock is the database's record of when it started).
    (app.store as SqliteStore).db.prepare("UPDATE workshops SET started_at = started_at - 5 * 60000 WHERE id = ?").run(w.id);
    const ended = await until(
      async () => (await call(app, "GET", `/api/workshops/${w.id}`, { cookie: instructor })).body.workshop,
      (x) => x.endedAt !== null,
      10_000,
      "the workshop to end",
    );
    expect(ended.endedReason).toBe("its time was up");
    await until(() => workshopSandboxes(env.SHIPSHAPE_NAMESPACE!, w.id).length, (n) => n === 0, 30_000, "its sandboxes to go");
  });

  it("keeps workshops, rosters and results across a restart", async () => {
    const w = await createWorkshop({ title: "Survives restarts" });
    const fay = await join(app, w.code, "Fay");
    expect(fay.body.you.status).toBe("admitted");
    const before = (await call(app, "GET", `/api/workshops/${w.id}`, { cookie: instructor })).body;
    await app.close();
    app = await startTestApp(env);
    const after = await call(app, "GET", `/api/workshops/${w.id}`, { cookie: instructor });
    expect(after.status).toBe(200); // the instructor cookie survives too (same admin secret)
    expect(after.body.workshop).toMatchObject({ code: w.code, title: "Survives restarts", capacity: 5 });
    expect(after.body.learners.map((l: { name: string; status: string }) => [l.name, l.status])).toEqual([["Fay", "admitted"]]);
    expect(after.body.learners[0].memberId).toBe(before.learners[0].memberId);
    const mine = await call(app, "GET", "/api/workshops/mine", { cookie: fay.cookie });
    expect(mine.body.you).toMatchObject({ name: "Fay", status: "admitted" });
    expect((await call(app, "GET", "/api/workshops", { cookie: instructor })).body.workshops.length).toBeGreaterThan(3);
    await call(app, "POST", `/api/workshops/${w.id}/end`, { cookie: instructor });
  });
});

describe("a workshop on a server with no sandbox to spare", () => {
  let app: App;

  beforeAll(async () => {
    app = await startTestApp(testEnv({ SHIPSHAPE_ADMIN_SECRET: ADMIN_SECRET, SHIPSHAPE_MAX_SANDBOXES: "2" }));
  });

  afterAll(async () => {
    for (const s of (await app?.runtime.list()) ?? []) await app.runtime.destroy(s.id);
    await app?.close();
  });

  it("queues learners (saying why) rather than failing, and lets them in when a sandbox frees up", async () => {
    const instructor = await signIn(app);
    const w = (await call(app, "POST", "/api/workshops", {
      cookie: instructor,
      body: { title: "Small server", lessons: ["first-containers"], capacity: 2, durationMinutes: 30 },
    })).body as { id: string; code: string };
    // Someone outside the workshop holds one of the server's two sandboxes.
    const outsider = await openLearnerSession(app, "");
    const outsiderCookie = cookieOf(outsider)!;
    const gil = await join(app, w.code, "Gil");
    expect(gil.body.you.status).toBe("admitted");
    const hal = await join(app, w.code, "Hal");
    expect(hal.status).toBe(200);
    expect(hal.body.you).toMatchObject({ status: "queued", position: 1, waitReason: "server_full" });
    expect((await openLearnerSession(app, hal.cookie)).status).toBe(429);
    expect((await call(app, "DELETE", "/api/sessions/current", { cookie: outsiderCookie })).status).toBe(204);
    const now = await until(
      async () => (await call(app, "GET", "/api/workshops/mine", { cookie: hal.cookie })).body.you,
      (you) => you.status === "admitted",
      15_000,
      "Hal to be let in",
    );
    expect(now.waitReason).toBeNull();
    expect((await openLearnerSession(app, hal.cookie)).status).toBe(200);
  });
});
