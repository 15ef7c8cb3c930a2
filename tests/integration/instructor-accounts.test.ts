import type { SqliteStore } from "../../sandbox-server/src/store/store.ts";
import { createHash } from "node:crypto";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../sandbox-server/src/app.ts";
import { startTestApp, testEnv } from "../support/server.ts";

const ADMIN_SECRET = "integration-admin-secret-accounts-7c1e";

interface Reply {
  status: number;
  body: any;
  text: string;
  headers: Headers;
}

/** fetch with a cookie and the site's Origin. */
async function call(app: App, method: string, path: string, options: { cookie?: string; body?: unknown; forwardedFor?: string } = {}): Promise<Reply> {
  const headers: Record<string, string> = { "content-type": "application/json", origin: app.url };
  if (options.cookie) headers.cookie = options.cookie;
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
const tokenOf = (link: string) => new URL(link, "http://x").hash.replace(/^#invite=/, "");

/** The status of a /ws/watch upgrade with this cookie (101 when it opened). */
function watchStatus(app: App, cookie: string, workshopId: string): Promise<number> {
  return new Promise<number>((resolve) => {
    const ws = new WebSocket(`${app.url.replace("http", "ws")}/ws/watch?workshop=${workshopId}&learner=nobody&terminal=main`, {
      headers: { origin: app.url, cookie },
    });
    ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
    ws.on("open", () => {
      resolve(101);
      ws.close();
    });
    ws.on("error", () => {});
  });
}

/** Opens the dashboard stream; resolves with the status and, for a 200, a reader of the text so far. */
async function openStream(app: App, cookie: string, workshopId: string) {
  const controller = new AbortController();
  const res = await fetch(`${app.url}/api/workshops/${workshopId}/events`, { headers: { cookie }, signal: controller.signal });
  return { status: res.status, res, abort: () => controller.abort() };
}

describe("instructor accounts and invites", () => {
  let app: App;
  let admin: string;

  beforeAll(async () => {
    app = await startTestApp(testEnv({ SHIPSHAPE_ADMIN_SECRET: ADMIN_SECRET }));
    const reply = await call(app, "POST", "/api/instructor/session", { body: { secret: ADMIN_SECRET } });
    expect(reply.status).toBe(200);
    admin = cookieOf(reply)!;
  });

  afterAll(async () => {
    await app?.close();
  });

  const invite = async (name: string, role: "admin" | "instructor" = "instructor", by = admin) => {
    const reply = await call(app, "POST", "/api/instructor/invites", { cookie: by, body: { name, role } });
    expect(reply.status, reply.text).toBe(201);
    expect(reply.body.link).toMatch(/^\/instructor\/#invite=[A-Za-z0-9_-]{43}$/);
    return reply.body as { link: string; name: string; role: string; expiresAt: number };
  };
  /** Opens an invite link as the invited person would: preview, then confirm. Returns their cookie. */
  const accept = async (link: string) => {
    const token = tokenOf(link);
    const preview = await call(app, "POST", "/api/instructor/invites/preview", { body: { token } });
    expect(preview.status, preview.text).toBe(200);
    const redeemed = await call(app, "POST", "/api/instructor/invites/redeem", { body: { token } });
    expect(redeemed.status, redeemed.text).toBe(200);
    return { cookie: cookieOf(redeemed)!, instructor: redeemed.body.instructor as { id: string; name: string; role: string } };
  };
  const createWorkshop = async (cookie: string, title: string) => {
    const reply = await call(app, "POST", "/api/workshops", { cookie, body: { title, lessons: ["first-containers"], capacity: 3, durationMinutes: 60 } });
    expect(reply.status, reply.text).toBe(201);
    return reply.body as { id: string; code: string };
  };

  it("signs the admin secret in as the built-in admin, and says who is signed in", async () => {
    const me = await call(app, "GET", "/api/instructor/session", { cookie: admin });
    expect(me.body).toEqual({ signedIn: true, instructor: { id: "admin", name: "Admin", role: "admin" } });
  });

  it("turns an admin's invite into a named account exactly once, in an HttpOnly Strict cookie", async () => {
    const created = await invite("Grace Hopper");
    expect(created).toMatchObject({ name: "Grace Hopper", role: "instructor" });
    expect(created.expiresAt - Date.now()).toBeGreaterThan(6.9 * 24 * 3600_000);
    const token = tokenOf(created.link);
    const preview = await call(app, "POST", "/api/instructor/invites/preview", { body: { token } });
    expect(preview.body).toMatchObject({ name: "Grace Hopper", role: "instructor" });
    // Previewing does not use it up; redeeming does.
    const redeemed = await call(app, "POST", "/api/instructor/invites/redeem", { body: { token } });
    expect(redeemed.status).toBe(200);
    expect(redeemed.headers.get("set-cookie")).toMatch(/^__Host-shipshape_instructor=[^;]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200; Secure$/);
    const grace = cookieOf(redeemed)!;
    const me = await call(app, "GET", "/api/instructor/session", { cookie: grace });
    expect(me.body).toMatchObject({ signedIn: true, instructor: { name: "Grace Hopper", role: "instructor" } });
    expect(me.body.instructor.id).not.toBe("admin");
    const again = await call(app, "POST", "/api/instructor/invites/redeem", { body: { token } });
    expect(again.status).toBe(401);
    expect(again.body.message).toMatch(/already used, has expired/);
    expect(again.headers.get("set-cookie")).toBeNull();
    // The database holds only the token's hash.
    const rows = (app.store as SqliteStore).db.prepare("SELECT token_hash FROM instructor_invites").all().map((r) => String(r.token_hash));
    expect(rows).toContain(createHash("sha256").update(token).digest("hex"));
    expect(rows.join(" ")).not.toContain(token);
  });

  it("refuses expired and forged invite links", async () => {
    const expired = await invite("Late Larry");
    const token = tokenOf(expired.link);
    // A week passes: the stored invite's expiry is moved into the past.
    (app.store as SqliteStore).db.prepare("UPDATE instructor_invites SET expires_at = ? WHERE token_hash = ?").run(Date.now() - 1, createHash("sha256").update(token).digest("hex"));
    const late = await call(app, "POST", "/api/instructor/invites/redeem", { body: { token } });
    expect(late.status).toBe(401);
    expect(late.headers.get("set-cookie")).toBeNull();
    const valid = tokenOf((await invite("Real Person")).link);
    const forged = valid.slice(0, 42) + (valid.endsWith("A") ? "B" : "A");
    for (const bad of [forged, "A".repeat(43)]) {
      const reply = await call(app, "POST", "/api/instructor/invites/redeem", { body: { token: bad } });
      expect(reply.status, bad).toBe(401);
      expect(reply.headers.get("set-cookie")).toBeNull();
    }
    const names = (await call(app, "GET", "/api/instructor/instructors", { cookie: admin })).body.instructors.map((i: { name: string }) => i.name);
    expect(names).not.toContain("Late Larry");
    expect(names).not.toContain("Real Person");
  });

  it("keeps instructors out of each other's workshops (dashboard, changes, end, CSV, stream, terminal watch); the admin sees all", async () => {
    const a = await accept((await invite("Instructor A")).link);
    const b = await accept((await invite("Instructor B")).link);
    const wa = await createWorkshop(a.cookie, "A's class");
    const wb = await createWorkshop(b.cookie, "B's class");

    const listA = (await call(app, "GET", "/api/workshops", { cookie: a.cookie })).body.workshops.map((w: { id: string }) => w.id);
    expect(listA).toContain(wa.id);
    expect(listA).not.toContain(wb.id);
    const listAdmin = (await call(app, "GET", "/api/workshops", { cookie: admin })).body.workshops.map((w: { id: string }) => w.id);
    expect(listAdmin).toEqual(expect.arrayContaining([wa.id, wb.id]));

    const routes: Array<[string, string, unknown?]> = [
      ["GET", `/api/workshops/${wb.id}`],
      ["PATCH", `/api/workshops/${wb.id}`, { capacity: 9 }],
      ["POST", `/api/workshops/${wb.id}/prewarm`, { count: 0 }],
      ["POST", `/api/workshops/${wb.id}/messages`, { message: "hijacked" }],
      ["POST", `/api/workshops/${wb.id}/end`],
      ["GET", `/api/workshops/${wb.id}/grades.csv`],
    ];
    for (const [method, path, body] of routes) {
      const reply = await call(app, method, path, { cookie: a.cookie, ...(body ? { body } : {}) });
      expect(reply.status, `${method} ${path}`).toBe(403);
      expect(reply.body.message).toMatch(/belongs to another instructor/);
    }
    const stream = await openStream(app, a.cookie, wb.id);
    expect(stream.status).toBe(403);
    expect(await watchStatus(app, a.cookie, wb.id)).toBe(403);

    // Nothing above changed B's workshop; B and the admin still reach it.
    const dashboard = await call(app, "GET", `/api/workshops/${wb.id}`, { cookie: b.cookie });
    expect(dashboard.status).toBe(200);
    expect(dashboard.body.workshop).toMatchObject({ capacity: 3, endedAt: null });
    expect(dashboard.body.messages).toEqual([]);
    expect((await call(app, "GET", `/api/workshops/${wb.id}/grades.csv`, { cookie: admin })).status).toBe(200);
    const adminStream = await openStream(app, admin, wb.id);
    expect(adminStream.status).toBe(200);
    adminStream.abort();
    // The watch gets past the owner check (then closes: "nobody" is not a learner there).
    expect(await watchStatus(app, admin, wb.id)).toBe(101);
    expect(await watchStatus(app, b.cookie, wb.id)).toBe(101);
    const ended = await call(app, "POST", `/api/workshops/${wb.id}/end`, { cookie: admin });
    expect(ended.status, ended.text).toBe(200);
    // A's own workshop is still A's to run.
    expect((await call(app, "GET", `/api/workshops/${wa.id}`, { cookie: a.cookie })).status).toBe(200);
  });

  it("gives an existing instructor a one-time sign-in link into the same account", async () => {
    const e = await accept((await invite("Instructor E")).link);
    const we = await createWorkshop(e.cookie, "E's class");
    const made = await call(app, "POST", `/api/instructor/instructors/${e.instructor.id}/sign-in-link`, { cookie: admin });
    expect(made.status, made.text).toBe(201);
    const again = await accept(made.body.link);
    expect(again.instructor).toEqual(e.instructor);
    expect((await call(app, "GET", `/api/workshops/${we.id}`, { cookie: again.cookie })).status).toBe(200);
    expect((await call(app, "POST", "/api/instructor/invites/redeem", { body: { token: tokenOf(made.body.link) } })).status).toBe(401);
    expect((await call(app, "POST", `/api/instructor/instructors/${e.instructor.id}/sign-in-link`, { cookie: e.cookie })).status).toBe(403);
  });

  it("lets only admins invite, list and disable", async () => {
    const c = await accept((await invite("Instructor C")).link);
    expect((await call(app, "POST", "/api/instructor/invites", { cookie: c.cookie, body: { name: "Mallory", role: "admin" } })).status).toBe(403);
    expect((await call(app, "GET", "/api/instructor/instructors", { cookie: c.cookie })).status).toBe(403);
    expect((await call(app, "POST", "/api/instructor/instructors/admin/disable", { cookie: c.cookie })).status).toBe(403);
    expect((await call(app, "POST", "/api/instructor/invites", { body: { name: "Nobody", role: "admin" } })).status).toBe(401);
    // An invited admin manages accounts too, and sees every workshop.
    const boss = await accept((await invite("Second Admin", "admin")).link);
    expect(boss.instructor.role).toBe("admin");
    expect((await call(app, "GET", "/api/instructor/instructors", { cookie: boss.cookie })).status).toBe(200);
  });

  it("disabling an account stops its live cookie at once and ends its open dashboard stream", async () => {
    const d = await accept((await invite("Instructor D")).link);
    const wd = await createWorkshop(d.cookie, "D's class");
    const stream = await openStream(app, d.cookie, wd.id);
    expect(stream.status).toBe(200);
    const reader = stream.res.body!.getReader();
    const disabled = await call(app, "POST", `/api/instructor/instructors/${d.instructor.id}/disable`, { cookie: admin });
    expect(disabled.status, disabled.text).toBe(200);
    expect(disabled.body.disabledAt).toEqual(expect.any(Number));
    // The stream says so and ends.
    let text = "";
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
    }
    expect(text).toContain("event: signed-out");
    expect((await call(app, "GET", "/api/workshops", { cookie: d.cookie })).status).toBe(401);
    expect((await call(app, "GET", "/api/instructor/session", { cookie: d.cookie })).body).toEqual({ signedIn: false });
    // Nor does a sign-in link into the disabled account work.
    expect((await call(app, "POST", `/api/instructor/instructors/${d.instructor.id}/sign-in-link`, { cookie: admin })).status).toBe(400);
    expect(await watchStatus(app, d.cookie, wd.id)).toBe(403);
    // The admin still has the workshop.
    expect((await call(app, "GET", `/api/workshops/${wd.id}`, { cookie: admin })).status).toBe(200);
  });

  it("limits invite link attempts per address like sign-in", async () => {
    let limited: Reply | undefined;
    for (let i = 0; i < 15 && !limited; i++) {
      const reply = await call(app, "POST", "/api/instructor/invites/redeem", { body: { token: "B".repeat(43) } });
      if (reply.status === 429) limited = reply;
      else expect(reply.status).toBe(401);
    }
    expect(limited?.body.message).toMatch(/Too many invite link attempts/);
  });
});
