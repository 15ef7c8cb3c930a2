import type { DatabaseSync } from "node:sqlite";

export interface Pruned {
  results: number;
  sessions: number;
  workshops: number;
}

/**
 * Deletes what is older than `before` (ms since the epoch): check and quiz verdicts, ended
 * sessions, and workshops that ended, with their rosters (learners' names) and announcements.
 * Live sessions and running workshops are never touched, however old.
 */
export function pruneOlderThan(db: DatabaseSync, before: number): Pruned {
  const has = (table: string) => db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table) !== undefined;
  db.exec("BEGIN");
  try {
    const results = Number(db.prepare("DELETE FROM results WHERE at < ?").run(before).changes);
    const sessions = Number(db.prepare("DELETE FROM sessions WHERE state = 'ended' AND last_active_at < ?").run(before).changes);
    let workshops = 0;
    if (has("workshops")) {
      const ended = "SELECT id FROM workshops WHERE ended_at IS NOT NULL AND ended_at < ?";
      db.prepare(`DELETE FROM workshop_members WHERE workshop_id IN (${ended})`).run(before);
      db.prepare(`DELETE FROM workshop_messages WHERE workshop_id IN (${ended})`).run(before);
      workshops = Number(db.prepare("DELETE FROM workshops WHERE ended_at IS NOT NULL AND ended_at < ?").run(before).changes);
    }
    db.exec("COMMIT");
    return { results, sessions, workshops };
  } catch (e) {
    db.exec("ROLLBACK");
    throw e;
  }
}
