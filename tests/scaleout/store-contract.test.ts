import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../sandbox-server/src/log.ts";
import type { BusEvent } from "../../sandbox-server/src/store/bus.ts";
import { PostgresStore } from "../../sandbox-server/src/store/postgres-store.ts";
import { SqliteStore, type SessionRecord, type Store } from "../../sandbox-server/src/store/store.ts";
import { createDatabase, startTestPostgres, type TestPostgres } from "../support/postgres.ts";

/**
 * The store's contract, run against both implementations: what the server relies on (one
 * sandbox per session, atomic pool claims, frozen results of ended workshops, one-time invites,
 * the bus) must hold on the SQLite file and on a real Postgres 15 alike.
 */

const log = createLogger("error", {}, () => {});
let pg: TestPostgres;
let databases = 0;

beforeAll(async () => {
  pg = await startTestPostgres();
}, 60_000);
afterAll(async () => {
  await pg?.destroy();
});

const session = (id: string, sandboxId: string | null, workshopId: string | null = null, at = Date.now()): SessionRecord => ({
  id,
  ownerId: `owner-${id}`,
  sandboxId,
  workshopId,
  createdAt: at,
  expiresAt: at + 3_600_000,
  lastActiveAt: at,
  state: sandboxId ? "ready" : "starting",
  endedReason: null,
});
const member = (sandboxId: string, workshopId: string | null = null) => ({ sandboxId, workshopId, addedAt: Date.now(), expiresAt: Date.now() + 86_400_000 });
const workshop = (id: string, code: string, endedAt: number | null = null) => ({
  id,
  code,
  title: id,
  lessons: ["first-containers"],
  capacity: 3,
  durationMs: 3_600_000,
  warmTarget: 0,
  createdAt: 1,
  startedAt: null,
  endsAt: null,
  endedAt,
  endedReason: null,
});
const verdict = (ownerId: string, workshopId: string | null, at: number, passed = true) => ({
  ownerId,
  sessionId: `s-${ownerId}`,
  workshopId,
  exerciseId: "run-and-stop",
  taskId: "web-stopped",
  passed,
  message: passed ? "ok" : `not yet ${at}`,
  at,
});

const implementations: Array<[string, () => Promise<Store>]> = [
  ["SQLite", async () => new SqliteStore(":memory:")],
  ["Postgres", async () => PostgresStore.open(createDatabase(pg, `contract${++databases}`), log)],
];

describe.each(implementations)("the %s store", (_name, open) => {
  it("claims a free pool member and binds it in one step; refuses held sandboxes and other workshops' reserves, writing nothing", async () => {
    const store = await open();
    try {
      await store.pool.add(member("sb-1"));
      await store.pool.add(member("sb-w", "w1"));
      expect(await store.sessions.insertClaimingPooled({ ...session("s1", "sb-1"), sandboxId: "sb-1" })).toBeUndefined();
      expect((await store.pool.members()).map((m) => m.sandboxId)).toEqual(["sb-w"]);
      expect((await store.sessions.get("s1"))?.sandboxId).toBe("sb-1");
      expect(await store.sessions.insertClaimingPooled({ ...session("s2", "sb-1"), sandboxId: "sb-1" })).toBe("bound to another session");
      expect(await store.sessions.insertClaimingPooled({ ...session("s3", "sb-x"), sandboxId: "sb-x" })).toBe("not an unclaimed pool member");
      expect(await store.sessions.insertClaimingPooled({ ...session("s4", "sb-w"), sandboxId: "sb-w" })).toBe("not an unclaimed pool member");
      expect(await store.sessions.insertClaimingPooled({ ...session("s5", "sb-w", "w2"), sandboxId: "sb-w" })).toBe("not an unclaimed pool member");
      for (const id of ["s2", "s3", "s4", "s5"]) expect(await store.sessions.get(id)).toBeUndefined();
      expect(await store.sessions.insertClaimingPooled({ ...session("s6", "sb-w", "w1"), sandboxId: "sb-w" })).toBeUndefined();
    } finally {
      await store.close();
    }
  });

  it("never binds one sandbox to two sessions, nor lists a held sandbox as free", async () => {
    const store = await open();
    try {
      await store.sessions.insert(session("a", "sb-1"));
      await expect(store.sessions.insert(session("b", "sb-1"))).rejects.toThrow(/already bound/);
      await store.sessions.insert(session("c", null));
      expect(await store.sessions.setSandbox("c", "sb-1", "ready")).toBe("bound to another session");
      expect(await store.sessions.setSandbox("c", "sb-2", "ready")).toBeUndefined();
      expect(await store.sessions.setSandbox("c", "sb-2", "ready")).toBeUndefined();
      await expect(store.pool.add(member("sb-2"))).rejects.toThrow(/already bound/);
      await store.sessions.end("a", "expired");
      // Ended, it still holds its sandbox for ever.
      await expect(store.pool.add(member("sb-1"))).rejects.toThrow(/already bound/);
      expect((await store.sessions.boundTo("sb-1")).map((s) => [s.id, s.state, s.endedReason])).toEqual([["a", "ended", "expired"]]);
      expect((await store.sessions.live()).map((s) => s.id)).toEqual(["c"]);
      expect((await store.sessions.liveForOwner("owner-c"))?.sandboxId).toBe("sb-2");
    } finally {
      await store.close();
    }
  });

  it("keeps verdicts per task, freezes a workshop's results when it ends, and tells the bus", async () => {
    const store = await open();
    const events: BusEvent[] = [];
    const unsubscribe = store.bus.subscribe((e) => events.push(e));
    try {
      const ws = store.workshopStore;
      await ws.workshops.insert(workshop("w1", "K7QX2M"));
      const before = await ws.resultsVersion("w1");
      await store.results.insert(verdict("ana", "w1", 10, false));
      await store.results.insert(verdict("ana", "w1", 20, true));
      expect(await ws.resultsVersion("w1")).not.toBe(before);
      expect(await store.results.progressOf("ana")).toEqual([
        { exerciseId: "run-and-stop", taskId: "web-stopped", passed: true, attempts: 2, lastAt: 20, lastMessage: "ok" },
      ]);
      expect(await store.results.countOf("ana", "run-and-stop", "web-stopped")).toBe(2);
      await ws.workshops.end("w1", 30, "ended by the instructor");
      await store.results.insert(verdict("ana", "w1", 40)); // dropped by the database
      await store.results.insert(verdict("ana", null, 50)); // outside the workshop: kept
      expect((await ws.results("w1")).map((r) => r.at)).toEqual([10, 20]);
      expect(await store.results.countOf("ana", "run-and-stop", "web-stopped")).toBe(3);
      await expect.poll(() => events.filter((e) => e.type === "workshop" && e.workshopId === "w1").length, { timeout: 5_000 }).toBeGreaterThan(0);
    } finally {
      unsubscribe();
      await store.close();
    }
  });

  it("keeps rosters unique by name and owner, finds a browser's current membership, and messages in order", async () => {
    const store = await open();
    try {
      const ws = store.workshopStore;
      await ws.workshops.insert(workshop("w1", "AAAAAA"));
      const m = { id: "m1", workshopId: "w1", ownerId: "o1", displayName: "Ana  Lopez", joinedAt: 1, status: "queued" as const, queuedAt: 1, admittedAt: null, leftAt: null };
      await ws.members.insert(m);
      expect(await ws.members.nameTaken("w1", "ana lopez")).toBe(true);
      await expect(ws.members.insert({ ...m, id: "m2", ownerId: "o2", displayName: "ANA LOPEZ" })).rejects.toThrow();
      await ws.members.setStatus("m1", "admitted", 5);
      expect(await ws.members.currentOf("o1")).toMatchObject({ id: "m1", status: "admitted", admittedAt: 5 });
      await ws.workshops.start("w1", 5);
      await ws.workshops.start("w1", 9); // the clock starts once
      expect(await ws.workshops.get("w1")).toMatchObject({ startedAt: 5, endsAt: 5 + 3_600_000 });
      await ws.workshops.update("w1", { capacity: 7 });
      expect(await ws.workshops.byCode("AAAAAA")).toMatchObject({ capacity: 7, warmTarget: 0, lessons: ["first-containers"] });
      await ws.messages.insert("w1", "one", 1);
      await ws.messages.insert("w1", "two", 2);
      expect((await ws.messages.recent("w1", 5)).map((x) => x.message)).toEqual(["one", "two"]);
      await ws.workshops.end("w1", 10, "done");
      expect(await ws.members.currentOf("o1")).toBeUndefined();
      expect(await ws.members.latestOf("o1")).toMatchObject({ id: "m1" });
      expect((await ws.workshops.live()).length).toBe(0);
    } finally {
      await store.close();
    }
  });

  it("redeems an invite once, even when two redeem it at the same moment", async () => {
    const store = await open();
    try {
      const accounts = store.instructorStore;
      expect(await accounts.get("admin")).toMatchObject({ role: "admin", disabledAt: null });
      await accounts.insertInvite({ tokenHash: "h1", name: "Grace", role: "instructor", createdBy: "admin", createdAt: 1, expiresAt: Date.now() + 60_000, usedAt: null, instructorId: null });
      const both = await Promise.all([accounts.redeem("h1", "acc-1", Date.now()), accounts.redeem("h1", "acc-2", Date.now())]);
      expect(both.filter(Boolean)).toHaveLength(1);
      expect((await accounts.all()).map((a) => a.name)).toEqual(["Admin", "Grace"]);
      const grace = both.find(Boolean)!;
      expect(await accounts.disable(grace.id, 5)).toBe(true);
      expect(await accounts.disable(grace.id, 6)).toBe(false);
    } finally {
      await store.close();
    }
  });

  it("remembers revoked sign-ins and exercise setups, and prunes what is old", async () => {
    const store = await open();
    try {
      await store.revokedSignIns.revoke("sign-1", 100);
      await store.revokedSignIns.revoke("sign-1", 100);
      expect(await store.revokedSignIns.isRevoked("sign-1")).toBe(true);
      expect(await store.revokedSignIns.prune(100)).toBe(1);
      expect(await store.revokedSignIns.isRevoked("sign-1")).toBe(false);
      expect(await store.setups.ran("sb", "ex")).toBe(false);
      await store.setups.record("sb", "ex", 1);
      await store.setups.record("sb", "ex", 2);
      expect(await store.setups.ran("sb", "ex")).toBe(true);
      await store.results.insert(verdict("old", null, 1));
      await store.sessions.insert({ ...session("gone", null, null, 1), state: "ended" });
      await store.sessions.insert(session("live", null, null, 1));
      await store.workshopStore.workshops.insert(workshop("w-old", "BBBBBB", 1));
      expect(await store.prune(1_000)).toEqual({ results: 1, sessions: 1, workshops: 1 });
      expect(await store.sessions.get("live")).toBeDefined();
    } finally {
      await store.close();
    }
  });
});

describe("Postgres shared by several servers", () => {
  it("lets exactly one of two servers claim a pooled sandbox, hold a workshop's seats, and lead at a time", async () => {
    const url = createDatabase(pg, "shared1");
    // Two servers starting together: migrations run once, under the lock.
    const [a, b] = await Promise.all([PostgresStore.open(url, log), PostgresStore.open(url, log)]);
    try {
      expect([a.schemaUpgrades.length, b.schemaUpgrades.length].sort()).toEqual([0, 1]);
      await a.pool.add(member("sb-shared"));
      const claims = await Promise.all([
        a.sessions.insertClaimingPooled({ ...session("from-a", "sb-shared"), sandboxId: "sb-shared" }),
        b.sessions.insertClaimingPooled({ ...session("from-b", "sb-shared"), sandboxId: "sb-shared" }),
      ]);
      expect(claims.filter((c) => c === undefined)).toHaveLength(1);
      expect(await a.sessions.boundTo("sb-shared")).toHaveLength(1);

      // Seats: what one server does under a workshop's lock, the other waits for.
      const order: string[] = [];
      const hold = (who: string) => async () => {
        order.push(`${who} in`);
        await new Promise((r) => setTimeout(r, 200));
        order.push(`${who} out`);
      };
      await Promise.all([a.workshopStore.exclusively("seats:w1", hold("a")), b.workshopStore.exclusively("seats:w1", hold("b"))]);
      expect([order[0]!.split(" ")[0], order[1]!.split(" ")[0]]).toEqual([order[0]!.split(" ")[0], order[0]!.split(" ")[0]]);
      expect(order.filter((o) => o.endsWith("in"))).toHaveLength(2);

      expect(await a.tryLead()).toBe(true);
      expect(await b.tryLead()).toBe(false);
      await a.close();
      // The lock went with A's connection: B leads now.
      await expect.poll(() => b.tryLead(), { timeout: 5_000 }).toBe(true);
    } finally {
      await b.close();
    }
  });

  it("delivers one server's events to the other, and both recover from a Postgres restart without reopening", async () => {
    const url = createDatabase(pg, "shared2");
    const a = await PostgresStore.open(url, log);
    const b = await PostgresStore.open(url, log);
    const seenByB: BusEvent[] = [];
    b.bus.subscribe((e) => seenByB.push(e));
    try {
      await a.workshopStore.workshops.insert(workshop("w1", "CCCCCC"));
      await a.results.insert(verdict("ana", "w1", 1));
      await expect.poll(() => seenByB.some((e) => e.type === "workshop" && e.workshopId === "w1"), { timeout: 5_000 }).toBe(true);

      await pg.stop();
      await expect(a.results.insert(verdict("ana", "w1", 2))).rejects.toThrow();
      await pg.start();
      // The pool opens new connections; the listener reconnects and says to look again.
      await expect.poll(async () => a.results.insert(verdict("ana", "w1", 3)).then(() => true, () => false), { timeout: 15_000, interval: 250 }).toBe(true);
      await expect.poll(() => seenByB.some((e) => e.type === "resync"), { timeout: 15_000 }).toBe(true);
      seenByB.length = 0;
      await a.results.insert(verdict("ana", "w1", 4));
      await expect.poll(() => seenByB.some((e) => e.type === "workshop"), { timeout: 5_000 }).toBe(true);
      expect((await b.workshopStore.results("w1")).map((r) => r.at)).toEqual([1, 3, 4]);
    } finally {
      await a.close();
      await b.close();
    }
  }, 60_000);
});
