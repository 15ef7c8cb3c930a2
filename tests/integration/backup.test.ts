import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import type { App } from "../../sandbox-server/src/app.ts";
import { repoRoot, startTestApp, testEnv } from "../support/server.ts";

const run = promisify(execFile);

/** `./shipshape backup` while the server runs, `./shipshape restore` after it stopped, as an operator types them. */
describe("backup and restore", () => {
  const env = testEnv();
  let app: App | undefined;
  afterAll(async () => {
    for (const s of (await app?.runtime.list()) ?? []) await app!.runtime.destroy(s.id);
    await app?.close();
  });

  const shipshape = (args: string[], extra: Record<string, string> = {}) =>
    run(path.join(repoRoot, "shipshape"), args, { env: { ...process.env, ...env, ...extra }, cwd: repoRoot, timeout: 60_000 }).then(
      (r) => ({ code: 0, out: r.stdout + r.stderr }),
      (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? 1, out: `${e.stdout ?? ""}${e.stderr ?? ""}` }),
    );

  it("copies a running server's data out and puts it back, keys included, keeping what it replaced", async () => {
    app = await startTestApp(env);
    // A learner who exists only in the database: their cookie must work again after the restore.
    const opened = await fetch(`${app.url}/api/sessions`, { method: "POST", headers: { origin: app.url, "content-type": "application/json" }, body: "{}" });
    expect(opened.ok).toBe(true);
    const { sessionId } = (await opened.json()) as { sessionId: string };
    const secretBefore = readFileSync(path.join(env.SHIPSHAPE_DATA_DIR!, "secret"), "utf8");

    const dest = path.join(mkdtempSync(path.join(tmpdir(), "shipshape-backup-")), "b1");
    const backedUp = await shipshape(["backup", dest]);
    expect(backedUp.out).toContain(`to ${dest}`);
    expect(backedUp.code).toBe(0);
    expect(readdirSync(dest).sort()).toEqual(["admin-secret", "secret", "shipshape.db"]);
    expect(statSync(path.join(dest, "shipshape.db")).mode & 0o077).toBe(0);

    // Restoring under a running server is refused, in words.
    const refused = await shipshape(["restore", dest], { PORT: String(app.port) });
    expect(refused.code).toBe(1);
    expect(refused.out).toContain(`A server answers on port ${app.port}. Stop it first`);

    // After the backup: the session ends (the database changes), then the server stops.
    await app.sessions.end(sessionId, "replaced by a new sandbox");
    expect((await app.store.sessions.get(sessionId))?.state).toBe("ended");
    const port = app.port;
    await app.close();
    app = undefined;

    const restored = await shipshape(["restore", dest], { PORT: String(port) });
    expect(restored.code).toBe(0);
    const kept = /kept in (\S+)\./.exec(restored.out)?.[1];
    expect(kept && existsSync(path.join(kept, "shipshape.db"))).toBe(true);

    // The database is as it was at the backup (the session not ended), and the keys are the ones
    // that signed the learners' cookies.
    const db = new DatabaseSync(path.join(env.SHIPSHAPE_DATA_DIR!, "shipshape.db"), { readOnly: true });
    const row = db.prepare("SELECT state FROM sessions WHERE id = ?").get(sessionId) as { state: string };
    db.close();
    expect(row.state).not.toBe("ended");
    expect(readFileSync(path.join(env.SHIPSHAPE_DATA_DIR!, "secret"), "utf8")).toBe(secretBefore);

    // And a server starts on it.
    app = await startTestApp(env);
    expect(await app.store.sessions.get(sessionId)).toBeDefined();
  }, 180_000);

  it("says what is wrong with a folder that is not a backup", async () => {
    const r = await shipshape(["restore", tmpdir()], { PORT: "1" });
    expect(r.code).toBe(1);
    expect(r.out).toContain("is not a shipshape backup");
  });
});
