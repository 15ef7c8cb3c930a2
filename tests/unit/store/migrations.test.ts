import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, describe, expect, it } from "vitest";
import { migrate, migrations, SCHEMA_VERSION, SchemaError } from "../../../sandbox-server/src/store/migrations.ts";
import { SqliteStore as Store } from "../../../sandbox-server/src/store/store.ts";
import { SqliteWorkshopStore as WorkshopStore } from "../../../sandbox-server/src/store/workshop-store.ts";

/**
 * Upgrades: a data directory from the previous release opens in this one with nothing lost.
 * tests/fixtures/data/release-0.1.sql is a database written by release 0.1's own store code
 * (commit b037f34, before versioned migrations), dumped with sqlite3.
 */
const repoRoot = path.resolve(import.meta.dirname, "../../..");
const release01 = readFileSync(path.join(repoRoot, "tests/fixtures/data/release-0.1.sql"), "utf8");

describe("schema migrations", () => {
  let dir = "";
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const oldDatabase = () => {
    dir = mkdtempSync(path.join(tmpdir(), "shipshape-upgrade-"));
    const file = path.join(dir, "shipshape.db");
    const db = new DatabaseSync(file);
    db.exec(release01);
    db.close();
    return file;
  };
  const version = (db: DatabaseSync) => (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version;

  it("upgrades release 0.1's data to the current schema, keeping every session, result, workshop, member and message", async () => {
    const file = oldDatabase();
    const store = new Store(file);
    expect(store.schemaUpgrades).toEqual(migrations.map((m) => `${m.version}: ${m.name}`));
    expect(version(store.db)).toBe(SCHEMA_VERSION);

    expect(await store.sessions.get("sessold1abcdefgh")).toMatchObject({ ownerId: "ownerana", state: "ended", endedReason: "expired", workshopId: "w1" });
    expect(await store.results.progressOf("ownerana")).toMatchObject([{ exerciseId: "run-and-stop", taskId: "web-stopped", passed: true, attempts: 1 }]);
    expect(await store.results.progressOf("ownerben")).toMatchObject([{ exerciseId: "quiz:container-vs-vm", passed: false }]);
    const workshops = new WorkshopStore(store.db);
    expect(await workshops.workshops.get("w1")).toMatchObject({ code: "K7QX2M", title: "Docker for data people", capacity: 30 });
    expect(await workshops.messages.recent("w1")).toEqual([expect.objectContaining({ message: "Start with lesson 1" })]);

    // What the new steps brought works on the old data: a sandbox a session held once can never be pooled.
    expect(() => store.db.prepare("INSERT INTO pool_sandboxes (sandbox_id, workshop_id, added_at, expires_at) VALUES ('c0ffee01', NULL, 1, 2)").run()).toThrow(
      /sandbox already bound to a session/,
    );
    store.close();

    // A second open has nothing left to do.
    const again = new Store(file);
    expect(again.schemaUpgrades).toEqual([]);
    again.close();
  });

  it("gives a new file the same schema as an upgraded one", () => {
    const schema = (db: DatabaseSync) =>
      (db.prepare("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name").all() as Array<{ type: string; name: string }>).map(
        (r) => `${r.type} ${r.name}`,
      );
    const upgraded = new Store(oldDatabase());
    const fresh = new Store(":memory:");
    expect(schema(fresh.db)).toEqual(schema(upgraded.db));
    expect(version(fresh.db)).toBe(SCHEMA_VERSION);
    upgraded.close();
    fresh.close();
  });

  it("refuses a database from a newer release, saying what to do, and changes nothing", () => {
    const file = oldDatabase();
    const db = new DatabaseSync(file);
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
    expect(() => migrate(db)).toThrow(SchemaError);
    expect(() => migrate(db)).toThrow(/written by a newer shipshape .*restore a backup/);
    expect(version(db)).toBe(SCHEMA_VERSION + 1);
    db.close();
  });

  it("rolls a failing step back whole, and names it", () => {
    const db = new DatabaseSync(":memory:");
    const steps = [...migrations, { version: SCHEMA_VERSION + 1, name: "a broken step", sql: "CREATE TABLE half (x); INSERT INTO nowhere VALUES (1);" }];
    expect(() => migrate(db, steps)).toThrow(/schema \d+ \(a broken step\) failed/);
    expect(version(db)).toBe(SCHEMA_VERSION);
    expect(db.prepare("SELECT name FROM sqlite_master WHERE name = 'half'").get()).toBeUndefined();
    db.close();
  });
});
