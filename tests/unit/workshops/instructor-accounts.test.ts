import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { SqliteStore as Store } from "../../../sandbox-server/src/store/store.ts";
import { InstructorSessionStore } from "../../../sandbox-server/src/store/instructor-session-store.ts";
import { BUILT_IN_ADMIN_ID, SqliteInstructorStore as InstructorStore } from "../../../sandbox-server/src/store/instructor-store.ts";
import { SqliteWorkshopStore as WorkshopStore } from "../../../sandbox-server/src/store/workshop-store.ts";
import { InstructorAuth, INVITE_TTL_MS, type SignedInInstructor } from "../../../sandbox-server/src/workshops/instructor-auth.ts";
import { ShipshapeError } from "../../../sandbox-server/src/errors.ts";

const SECRET = "unit-admin-secret-0123456789";

/** Auth over a real SQLite file (accounts, invites and revocations as the server keeps them), with a clock we move. */
async function setUp() {
  const store = new Store(path.join(mkdtempSync(path.join(tmpdir(), "shipshape-accounts-")), "shipshape.db"));
  const clock = { now: 1_800_000_000_000 };
  const auth = new InstructorAuth(SECRET, () => clock.now, new InstructorSessionStore(store.db), new InstructorStore(store.db));
  const admin = (await auth.whoIs(auth.issue().value))!;
  return { store, clock, auth, admin };
}

const codeOf = async (fn: () => unknown): Promise<string | undefined> => {
  try {
    await fn();
  } catch (e) {
    return e instanceof ShipshapeError ? e.code : `not a ShipshapeError: ${String(e)}`;
  }
  return undefined;
};

describe("instructor accounts", () => {
  it("signs the admin secret's cookie in as the built-in admin account", async () => {
    const { admin } = await setUp();
    expect(admin).toEqual({ id: BUILT_IN_ADMIN_ID, name: "Admin", role: "admin" });
  });

  it("makes a one-time invite: a 43-character token, only its hash stored, that signs in once as the named account", async () => {
    const { store, auth, admin } = await setUp();
    const { token, expiresAt } = await auth.createInvite(admin, "  Grace   Hopper ", "instructor");
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const stored = store.db.prepare("SELECT token_hash FROM instructor_invites").all().map((r) => String(r.token_hash));
    expect(stored).toHaveLength(1);
    expect(stored[0]).not.toContain(token);
    expect(expiresAt).toBe(1_800_000_000_000 + INVITE_TTL_MS);
    expect(await auth.previewInvite(token)).toEqual({ name: "Grace Hopper", role: "instructor", expiresAt });
    const grace = await auth.redeemInvite(token);
    expect(grace).toMatchObject({ name: "Grace Hopper", role: "instructor" });
    expect(grace.id).not.toBe(BUILT_IN_ADMIN_ID);
    expect(await auth.whoIs(auth.issue(grace.id).value)).toEqual(grace);
    // Used: refused the second time, with the same words as a forged one.
    expect(await codeOf(() => auth.redeemInvite(token))).toBe("unauthorized");
    expect(await codeOf(() => auth.previewInvite(token))).toBe("unauthorized");
    expect((await auth.listAccounts(admin)).map((a) => a.name)).toEqual(["Admin", "Grace Hopper"]);
  });

  it("refuses an expired invite and a forged one", async () => {
    const { clock, auth, admin } = await setUp();
    const { token } = await auth.createInvite(admin, "Late Larry", "instructor");
    clock.now += INVITE_TTL_MS;
    expect(await codeOf(() => auth.previewInvite(token))).toBe("unauthorized");
    expect(await codeOf(() => auth.redeemInvite(token))).toBe("unauthorized");
    const forged = token.slice(0, -1) + (token.endsWith("A") ? "B" : "A");
    const fresh = (await auth.createInvite(admin, "Other", "instructor")).token;
    for (const bad of [forged, "", "x".repeat(43), fresh + "x", "../../etc"]) {
      expect(await codeOf(() => auth.redeemInvite(bad)), bad).toBe("unauthorized");
    }
    expect((await auth.listAccounts(admin)).map((a) => a.name)).toEqual(["Admin"]);
  });

  it("lets only admins invite, list and disable; an invited admin is an admin", async () => {
    const { auth, admin } = await setUp();
    const ada = await auth.redeemInvite((await auth.createInvite(admin, "Ada", "instructor")).token);
    expect(await codeOf(() => auth.createInvite(ada, "Mallory", "admin"))).toBe("forbidden");
    expect(await codeOf(() => auth.listAccounts(ada))).toBe("forbidden");
    expect(await codeOf(() => auth.disable(ada, BUILT_IN_ADMIN_ID))).toBe("forbidden");
    const boss = await auth.redeemInvite((await auth.createInvite(admin, "Boss", "admin")).token);
    expect(boss.role).toBe("admin");
    expect(await auth.listAccounts(boss)).toHaveLength(3);
    expect(await codeOf(() => auth.disable(boss, BUILT_IN_ADMIN_ID))).toBe("bad_request");
    expect(await codeOf(() => auth.disable(boss, boss.id))).toBe("bad_request");
    expect(await codeOf(() => auth.disable(boss, "nobody"))).toBe("not_found");
  });

  it("refuses names that are empty, too long or carry control characters", async () => {
    const { auth, admin } = await setUp();
    for (const name of ["", "   ", "x".repeat(81), "Eve\nINFO forged log line", "Bob\u202egnp.exe"]) {
      expect(await codeOf(() => auth.createInvite(admin, name, "instructor")), JSON.stringify(name)).toBe("bad_request");
    }
  });

  it("disabling an account refuses its live cookies at once and ends what is open on them", async () => {
    const { auth, admin } = await setUp();
    const ada = await auth.redeemInvite((await auth.createInvite(admin, "Ada", "instructor")).token);
    const cookie = auth.issue(ada.id).value;
    const otherCookie = auth.issue(ada.id).value;
    const adminCookie = auth.issue().value;
    let ended = 0;
    let adminEnded = 0;
    await auth.watch(cookie, () => ended++);
    await auth.watch(otherCookie, () => ended++);
    await auth.watch(adminCookie, () => adminEnded++);
    expect(await auth.verify(cookie)).toBe(true);
    await auth.disable(admin, ada.id);
    expect(await auth.verify(cookie)).toBe(false);
    expect(await auth.verify(otherCookie)).toBe(false);
    expect(ended).toBe(2);
    expect(adminEnded).toBe(0);
    expect(await auth.verify(adminCookie)).toBe(true);
  });

  it("names the account in the signed cookie: changing the account id breaks the signature", async () => {
    const { auth, admin } = await setUp();
    const ada = await auth.redeemInvite((await auth.createInvite(admin, "Ada", "instructor")).token);
    const cookie = auth.issue(ada.id).value;
    const [payload, signature] = [cookie.slice(0, cookie.lastIndexOf(".")), cookie.slice(cookie.lastIndexOf(".") + 1)];
    expect(payload).toContain(`instructor:${ada.id}:`);
    expect(await auth.whoIs(`${payload.replace(ada.id, BUILT_IN_ADMIN_ID)}.${signature}`)).toBeUndefined();
  });

  it("lets an instructor manage only the workshops they own; admins manage all", async () => {
    const ada: SignedInInstructor = { id: "ada", name: "Ada", role: "instructor" };
    const boss: SignedInInstructor = { id: "boss", name: "Boss", role: "admin" };
    expect(InstructorAuth.mayManage(ada, "ada")).toBe(true);
    expect(InstructorAuth.mayManage(ada, "bob")).toBe(false);
    expect(InstructorAuth.mayManage(ada, BUILT_IN_ADMIN_ID)).toBe(false);
    expect(InstructorAuth.mayManage(boss, "bob")).toBe(true);
  });

  it("gives workshops from before accounts to the built-in admin", async () => {
    const { store } = await setUp();
    const workshops = new WorkshopStore(store.db);
    await workshops.workshops.insert({
      id: "old1", code: "ABCDEF", title: "Old", lessons: [], capacity: 1, durationMs: 60_000, warmTarget: 0,
      createdAt: 1, startedAt: null, endsAt: null, endedAt: null, endedReason: null,
    });
    expect((await workshops.workshops.get("old1"))!.ownerInstructorId).toBe(BUILT_IN_ADMIN_ID);
  });
});

describe("sign-in links for existing accounts", () => {
  it("sign in to the same account once, and stop working when the account is disabled", async () => {
    const { auth, admin } = await setUp();
    const ada = await auth.redeemInvite((await auth.createInvite(admin, "Ada", "instructor")).token);
    const link = await auth.createSignInLink(admin, ada.id);
    expect(link).toMatchObject({ name: "Ada", role: "instructor" });
    expect(await auth.redeemInvite(link.token)).toEqual(ada);
    expect(await codeOf(() => auth.redeemInvite(link.token))).toBe("unauthorized");
    expect(await auth.listAccounts(admin)).toHaveLength(2);
    const unused = await auth.createSignInLink(admin, ada.id);
    await auth.disable(admin, ada.id);
    expect(await codeOf(() => auth.previewInvite(unused.token))).toBe("unauthorized");
    expect(await codeOf(() => auth.redeemInvite(unused.token))).toBe("unauthorized");
    expect(await codeOf(() => auth.createSignInLink(admin, ada.id))).toBe("bad_request");
    expect(await codeOf(() => auth.createSignInLink(ada, admin.id))).toBe("forbidden");
  });
});

describe("schema step 5", () => {
  it("upgrades a schema-4 database: existing workshops belong to the admin, and the step is safe to run twice", async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), "shipshape-schema5-")), "shipshape.db");
    const fresh = new Store(file);
    // A database as schema 4 left it: no accounts, no owner column, one workshop.
    fresh.db.exec("DROP TABLE instructor_invites; DROP TABLE instructors; DROP INDEX workshops_owner; ALTER TABLE workshops DROP COLUMN owner_instructor_id; PRAGMA user_version = 4");
    fresh.db.exec("INSERT INTO workshops (id, code, title, lessons, capacity, duration_ms, created_at) VALUES ('w4', 'ABCDEF', 'Old', '[]', 1, 60000, 1)");
    fresh.close();
    const upgraded = new Store(file);
    expect((await new WorkshopStore(upgraded.db).workshops.get("w4"))!.ownerInstructorId).toBe(BUILT_IN_ADMIN_ID);
    expect(await new InstructorStore(upgraded.db).get(BUILT_IN_ADMIN_ID)).toMatchObject({ role: "admin", disabledAt: null });
    upgraded.db.exec("PRAGMA user_version = 4");
    upgraded.close();
    await expect(new Store(file).close()).resolves.toBeUndefined();
  });
});
