import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { SqliteStore as Store, type SessionRecord } from "../../../sandbox-server/src/store/store.ts";

/** Issue 13: the store, not container labels, says which sandboxes are free pool members. */

const session = (id: string, sandboxId: string | null, workshopId: string | null = null): SessionRecord => ({
  id,
  ownerId: `owner-${id}`,
  sandboxId,
  workshopId,
  createdAt: Date.now(),
  expiresAt: Date.now() + 3_600_000,
  lastActiveAt: Date.now(),
  state: sandboxId ? "ready" : "starting",
  endedReason: null,
});

const member = (sandboxId: string, workshopId: string | null = null) => ({ sandboxId, workshopId, addedAt: Date.now(), expiresAt: Date.now() + 86_400_000 });

describe("pool membership in the store", () => {
  it("claims a free pool member and binds it to the session in one step; the member is gone", async () => {
    const store = new Store(":memory:");
    await store.pool.add(member("sb-1"));
    expect(await store.sessions.insertClaimingPooled({ ...session("s1", "sb-1"), sandboxId: "sb-1" })).toBeUndefined();
    expect(await store.pool.members()).toEqual([]);
    expect((await store.sessions.get("s1"))?.sandboxId).toBe("sb-1");
  });

  it("refuses, writing nothing, a sandbox that is no free member, or that a session (even an ended one) held", async () => {
    const store = new Store(":memory:");
    expect(await store.sessions.insertClaimingPooled({ ...session("s1", "sb-x"), sandboxId: "sb-x" })).toBe("not an unclaimed pool member");
    expect(await store.sessions.get("s1")).toBeUndefined();

    await store.pool.add(member("sb-1"));
    await store.sessions.insertClaimingPooled({ ...session("a", "sb-1"), sandboxId: "sb-1" });
    await store.sessions.end("a", "ended by the learner");
    // A stale member record of a sandbox a session held (as labels would have said "pool"):
    store.db.prepare("INSERT INTO pool_sandboxes (sandbox_id, workshop_id, added_at, expires_at) SELECT 'sb-2', NULL, 0, 0").run();
    store.db.prepare("UPDATE sessions SET sandbox_id = 'sb-2' WHERE id = 'a'").run();
    expect(await store.sessions.insertClaimingPooled({ ...session("b", "sb-2"), sandboxId: "sb-2" })).toBe("bound to another session");
    expect(await store.sessions.get("b")).toBeUndefined();
    expect((await store.pool.members()).map((m) => m.sandboxId)).toEqual(["sb-2"]); // rolled back, not half-claimed
  });

  it("keeps a workshop's reserve for that workshop", async () => {
    const store = new Store(":memory:");
    await store.pool.add(member("sb-w", "w1"));
    expect(await store.sessions.insertClaimingPooled({ ...session("s1", "sb-w"), sandboxId: "sb-w" })).toBe("not an unclaimed pool member");
    expect(await store.sessions.insertClaimingPooled({ ...session("s2", "sb-w", "w2"), sandboxId: "sb-w" })).toBe("not an unclaimed pool member");
    expect(await store.sessions.insertClaimingPooled({ ...session("s3", "sb-w", "w1"), sandboxId: "sb-w" })).toBeUndefined();
  });

  it("never lets any write bind one sandbox to two sessions, or list a held sandbox as free", async () => {
    const store = new Store(":memory:");
    await store.sessions.insert(session("a", "sb-1"));
    await expect(store.sessions.insert(session("b", "sb-1"))).rejects.toThrow(/already bound/);
    await store.sessions.insert(session("c", null));
    expect(await store.sessions.setSandbox("c", "sb-1", "ready")).toBe("bound to another session");
    expect(() => store.db.prepare("UPDATE sessions SET sandbox_id = 'sb-1' WHERE id = 'c'").run()).toThrow(/already bound/);
    expect(await store.sessions.setSandbox("c", "sb-2", "ready")).toBeUndefined();
    expect(await store.sessions.setSandbox("c", "sb-2", "ready")).toBeUndefined(); // the same binding again is no second one
    await expect(store.pool.add(member("sb-2"))).rejects.toThrow(/already bound/);
  });

  it("opens a database an older server wrote with one sandbox in two sessions (start() then ends the later one)", async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), "shipshape-store-")), "shipshape.db");
    const old = new Store(file);
    // A server before the fix: schema 1, without the triggers that step 2 adds.
    old.db.exec("DROP TRIGGER sessions_one_sandbox_insert; PRAGMA user_version = 1");
    await old.sessions.insert(session("a", "sb-1"));
    await old.sessions.insert(session("b", "sb-1"));
    await old.close();
    const reopened = new Store(file);
    expect((await reopened.sessions.boundTo("sb-1")).map((s) => s.id)).toEqual(["a", "b"]);
    await expect(reopened.sessions.insert(session("c", "sb-1"))).rejects.toThrow(/already bound/);
    await reopened.close();
  });
});
