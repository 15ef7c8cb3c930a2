import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { Store } from "../../../sandbox-server/src/store/store.ts";
import { InstructorSessionStore } from "../../../sandbox-server/src/store/instructor-session-store.ts";
import { BUILT_IN_ADMIN_ID, InstructorStore } from "../../../sandbox-server/src/store/instructor-store.ts";
import { WorkshopStore } from "../../../sandbox-server/src/store/workshop-store.ts";
import { InstructorAuth, INVITE_TTL_MS, type SignedInInstructor } from "../../../sandbox-server/src/workshops/instructor-auth.ts";
import { ShipshapeError } from "../../../sandbox-server/src/errors.ts";

const SECRET = "unit-admin-secret-0123456789";

/** Auth over a real SQLite file (accounts, invites and revocations as the server keeps them), with a clock we move. */
function setUp() {
  const store = new Store(path.join(mkdtempSync(path.join(tmpdir(), "shipshape-accounts-")), "shipshape.db"));
  const clock = { now: 1_800_000_000_000 };
  const auth = new InstructorAuth(SECRET, () => clock.now, new InstructorSessionStore(store.db), new InstructorStore(store.db));
  const admin = auth.whoIs(auth.issue().value)!;
  return { store, clock, auth, admin };
}

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (e) {
    return e instanceof ShipshapeError ? e.code : `not a ShipshapeError: ${String(e)}`;
  }
  return undefined;
};

describe("instructor accounts", () => {
  it("signs the admin secret's cookie in as the built-in admin account", () => {
    const { admin } = setUp();
    expect(admin).toEqual({ id: BUILT_IN_ADMIN_ID, name: "Admin", role: "admin" });
  });

  it("makes a one-time invite: a 43-character token, only its hash stored, that signs in once as the named account", () => {
    const { store, auth, admin } = setUp();
    const { token, expiresAt } = auth.createInvite(admin, "  Grace   Hopper ", "instructor");
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const stored = store.db.prepare("SELECT token_hash FROM instructor_invites").all().map((r) => String(r.token_hash));
    expect(stored).toHaveLength(1);
    expect(stored[0]).not.toContain(token);
    expect(expiresAt).toBe(1_800_000_000_000 + INVITE_TTL_MS);
    expect(auth.previewInvite(token)).toEqual({ name: "Grace Hopper", role: "instructor", expiresAt });
    const grace = auth.redeemInvite(token);
    expect(grace).toMatchObject({ name: "Grace Hopper", role: "instructor" });
    expect(grace.id).not.toBe(BUILT_IN_ADMIN_ID);
    expect(auth.whoIs(auth.issue(grace.id).value)).toEqual(grace);
    // Used: refused the second time, with the same words as a forged one.
    expect(codeOf(() => auth.redeemInvite(token))).toBe("unauthorized");
    expect(codeOf(() => auth.previewInvite(token))).toBe("unauthorized");
    expect(auth.listAccounts(admin).map((a) => a.name)).toEqual(["Admin", "Grace Hopper"]);
  });

  it("refuses an expired invite and a forged one", () => {
    const { clock, auth, admin } = setUp();
    const { token } = auth.createInvite(admin, "Late Larry", "instructor");
    clock.now += INVITE_TTL_MS;
    expect(codeOf(() => auth.previewInvite(token))).toBe("unauthorized");
    expect(codeOf(() => auth.redeemInvite(token))).toBe("unauthorized");
    const forged = token.slice(0, -1) + (token.endsWith("A") ? "B" : "A");
    const fresh = auth.createInvite(admin, "Other", "instructor").token;
    for (const bad of [forged, "", "x".repeat(43), fresh + "x", "../../etc"]) {
      expect(codeOf(() => auth.redeemInvite(bad)), bad).toBe("unauthorized");
    }
    expect(auth.listAccounts(admin).map((a) => a.name)).toEqual(["Admin"]);
  });

  it("lets only admins invite, list and disable; an invited admin is an admin", () => {
    const { auth, admin } = setUp();
    const ada = auth.redeemInvite(auth.createInvite(admin, "Ada", "instructor").token);
    expect(codeOf(() => auth.createInvite(ada, "Mallory", "admin"))).toBe("forbidden");
    expect(codeOf(() => auth.listAccounts(ada))).toBe("forbidden");
    expect(codeOf(() => auth.disable(ada, BUILT_IN_ADMIN_ID))).toBe("forbidden");
    const boss = auth.redeemInvite(auth.createInvite(admin, "Boss", "admin").token);
    expect(boss.role).toBe("admin");
    expect(auth.listAccounts(boss)).toHaveLength(3);
    expect(codeOf(() => auth.disable(boss, BUILT_IN_ADMIN_ID))).toBe("bad_request");
    expect(codeOf(() => auth.disable(boss, boss.id))).toBe("bad_request");
    expect(codeOf(() => auth.disable(boss, "nobody"))).toBe("not_found");
  });

  it("refuses names that are empty, too long or carry control characters", () => {
    const { auth, admin } = setUp();
    for (const name of ["", "   ", "x".repeat(81), "Eve\nINFO forged log line", "Bob\u202egnp.exe"]) {
      expect(codeOf(() => auth.createInvite(admin, name, "instructor")), JSON.stringify(name)).toBe("bad_request");
    }
  });

  it("disabling an account refuses its live cookies at once and ends what is open on them", () => {
    const { auth, admin } = setUp();
    const ada = auth.redeemInvite(auth.createInvite(admin, "Ada", "instructor").token);
    const cookie = auth.issue(ada.id).value;
    const otherCookie = auth.issue(ada.id).value;
    const adminCookie = auth.issue().value;
    let ended = 0;
    let adminEnded = 0;
    auth.watch(cookie, () => ended++);
    auth.watch(otherCookie, () => ended++);
    auth.watch(adminCookie, () => adminEnded++);
    expect(auth.verify(cookie)).toBe(true);
    auth.disable(admin, ada.id);
    expect(auth.verify(cookie)).toBe(false);
    expect(auth.verify(otherCookie)).toBe(false);
    expect(ended).toBe(2);
    expect(adminEnded).toBe(0);
    expect(auth.verify(adminCookie)).toBe(true);
  });

  it("names the account in the signed cookie: changing the account id breaks the signature", () => {
    const { auth, admin } = setUp();
    const ada = auth.redeemInvite(auth.createInvite(admin, "Ada", "instructor").token);
    const cookie = auth.issue(ada.id).value;
    const [payload, signature] = [cookie.slice(0, cookie.lastIndexOf(".")), cookie.slice(cookie.lastIndexOf(".") + 1)];
    expect(payload).toContain(`instructor:${ada.id}:`);
    expect(auth.whoIs(`${payload.replace(ada.id, BUILT_IN_ADMIN_ID)}.${signature}`)).toBeUndefined();
  });

  it("lets an instructor manage only the workshops they own; admins manage all", () => {
    const ada: SignedInInstructor = { id: "ada", name: "Ada", role: "instructor" };
    const boss: SignedInInstructor = { id: "boss", name: "Boss", role: "admin" };
    expect(InstructorAuth.mayManage(ada, "ada")).toBe(true);
    expect(InstructorAuth.mayManage(ada, "bob")).toBe(false);
    expect(InstructorAuth.mayManage(ada, BUILT_IN_ADMIN_ID)).toBe(false);
    expect(InstructorAuth.mayManage(boss, "bob")).toBe(true);
  });

  it("gives workshops from before accounts to the built-in admin", () => {
    const { store } = setUp();
    const workshops = new WorkshopStore(store.db);
    workshops.workshops.insert({
      id: "old1", code: "ABCDEF", title: "Old", lessons: [], capacity: 1, durationMs: 60_000, warmTarget: 0,
      createdAt: 1, startedAt: null, endsAt: null, endedAt: null, endedReason: null,
    });
    expect(workshops.workshops.get("old1")!.ownerInstructorId).toBe(BUILT_IN_ADMIN_ID);
  });
});

describe("sign-in links for existing accounts", () => {
  it("sign in to the same account once, and stop working when the account is disabled", () => {
    const { auth, admin } = setUp();
    const ada = auth.redeemInvite(auth.createInvite(admin, "Ada", "instructor").token);
    const link = auth.createSignInLink(admin, ada.id);
    expect(link).toMatchObject({ name: "Ada", role: "instructor" });
    expect(auth.redeemInvite(link.token)).toEqual(ada);
    expect(codeOf(() => auth.redeemInvite(link.token))).toBe("unauthorized");
    expect(auth.listAccounts(admin)).toHaveLength(2);
    const unused = auth.createSignInLink(admin, ada.id);
    auth.disable(admin, ada.id);
    expect(codeOf(() => auth.previewInvite(unused.token))).toBe("unauthorized");
    expect(codeOf(() => auth.redeemInvite(unused.token))).toBe("unauthorized");
    expect(codeOf(() => auth.createSignInLink(admin, ada.id))).toBe("bad_request");
    expect(codeOf(() => auth.createSignInLink(ada, admin.id))).toBe("forbidden");
  });
});

describe("schema step 5", () => {
  it("upgrades a schema-4 database: existing workshops belong to the admin, and the step is safe to run twice", () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), "shipshape-schema5-")), "shipshape.db");
    const fresh = new Store(file);
    // A database as schema 4 left it: no accounts, no owner column, one workshop.
    fresh.db.exec("DROP TABLE instructor_invites; DROP TABLE instructors; DROP INDEX workshops_owner; ALTER TABLE workshops DROP COLUMN owner_instructor_id; PRAGMA user_version = 4");
    fresh.db.exec("INSERT INTO workshops (id, code, title, lessons, capacity, duration_ms, created_at) VALUES ('w4', 'ABCDEF', 'Old', '[]', 1, 60000, 1)");
    fresh.close();
    const upgraded = new Store(file);
    expect(new WorkshopStore(upgraded.db).workshops.get("w4")!.ownerInstructorId).toBe(BUILT_IN_ADMIN_ID);
    expect(new InstructorStore(upgraded.db).get(BUILT_IN_ADMIN_ID)).toMatchObject({ role: "admin", disabledAt: null });
    upgraded.db.exec("PRAGMA user_version = 4");
    upgraded.close();
    expect(() => new Store(file).close()).not.toThrow();
  });
});
