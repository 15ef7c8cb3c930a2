import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import path from "node:path";
import { backup, DatabaseSync } from "node:sqlite";

/** What a backup holds: the database and the two keys that make its cookies and sign-ins valid. */
const DATABASE = "shipshape.db";
const KEY_FILES = ["secret", "admin-secret"];

export class BackupError extends Error {}

/**
 * Copies the data directory's state into `dest` (a new folder) while the server may be running:
 * SQLite's online backup gives a consistent snapshot without stopping writers.
 */
export async function backupDataDir(dataDir: string, dest: string): Promise<{ dir: string; pages: number }> {
  const dbFile = path.join(dataDir, DATABASE);
  if (!existsSync(dbFile)) throw new BackupError(`There is no database to back up at ${dbFile}. Is SHIPSHAPE_DATA_DIR right?`);
  if (existsSync(dest) && readdirSync(dest).length > 0) throw new BackupError(`${dest} already exists and is not empty; choose a new folder.`);
  mkdirSync(dest, { recursive: true, mode: 0o700 });
  const source = new DatabaseSync(dbFile, { readOnly: true });
  let pages: number;
  try {
    pages = await backup(source, path.join(dest, DATABASE));
  } finally {
    source.close();
  }
  chmodSync(path.join(dest, DATABASE), 0o600); // learners' sessions and results
  for (const key of KEY_FILES) {
    const from = path.join(dataDir, key);
    if (!existsSync(from)) continue;
    copyFileSync(from, path.join(dest, key));
    chmodSync(path.join(dest, key), 0o600);
  }
  return { dir: dest, pages };
}

/**
 * Puts a backup in place of the data directory's state. The server must be stopped (its open
 * database would keep writing to the replaced file). What was there is kept beside it, not deleted.
 */
export function restoreDataDir(src: string, dataDir: string, now = new Date()): { keptAs: string | undefined } {
  const dbFile = path.join(src, DATABASE);
  if (!existsSync(dbFile)) throw new BackupError(`${src} is not a shipshape backup: it has no ${DATABASE}.`);
  const check = new DatabaseSync(dbFile, { readOnly: true });
  try {
    const row = check.prepare("PRAGMA integrity_check").get() as { integrity_check: string };
    if (row.integrity_check !== "ok") throw new BackupError(`The backup's database is damaged (${row.integrity_check}); it was not restored.`);
  } finally {
    check.close();
  }
  mkdirSync(dataDir, { recursive: true });
  let keptAs: string | undefined;
  const current = [DATABASE, `${DATABASE}-wal`, `${DATABASE}-shm`, ...KEY_FILES].filter((f) => existsSync(path.join(dataDir, f)));
  if (current.length > 0) {
    keptAs = path.join(dataDir, `before-restore-${now.toISOString().replace(/[:.]/g, "-")}`);
    mkdirSync(keptAs, { mode: 0o700 });
    for (const f of current) renameSync(path.join(dataDir, f), path.join(keptAs, f));
  }
  copyFileSync(dbFile, path.join(dataDir, DATABASE));
  for (const key of KEY_FILES) {
    const from = path.join(src, key);
    if (!existsSync(from)) continue;
    copyFileSync(from, path.join(dataDir, key));
    chmodSync(path.join(dataDir, key), 0o600);
  }
  rmSync(path.join(dataDir, `${DATABASE}-journal`), { force: true });
  return { keptAs };
}
