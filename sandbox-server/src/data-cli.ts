import path from "node:path";
import { ConfigError, loadConfig } from "./config.ts";
import { BackupError, backupDataDir, restoreDataDir } from "./store/backup.ts";

/**
 * `./shipshape backup [folder]` and `./shipshape restore <folder>`: the data directory's database
 * and keys, copied consistently while the server runs, and put back while it is stopped.
 */
async function main(argv: string[]): Promise<number> {
  const [command, target] = argv;
  const config = loadConfig();
  const dataDir = path.resolve(config.SHIPSHAPE_DATA_DIR);
  if (command === "backup") {
    const dest = path.resolve(target ?? path.join(dataDir, "backups", new Date().toISOString().replace(/[:.]/g, "-")));
    const { dir, pages } = await backupDataDir(dataDir, dest);
    process.stdout.write(`Backed up ${dataDir} to ${dir} (${pages} database pages, with the signing keys).\nRestore it with: ./shipshape restore ${dir}\n`);
    return 0;
  }
  if (command === "restore") {
    if (!target) throw new BackupError("Name the backup folder to restore: ./shipshape restore <folder>");
    // A running server would keep writing to the database it has open.
    const running = await fetch(`http://127.0.0.1:${config.PORT}/healthz`, { signal: AbortSignal.timeout(1_000) }).then(() => true, () => false);
    if (running) throw new BackupError(`A server answers on port ${config.PORT}. Stop it first, then restore; start it again afterwards.`);
    const { keptAs } = restoreDataDir(path.resolve(target), dataDir);
    process.stdout.write(`Restored ${path.resolve(target)} into ${dataDir}.${keptAs ? ` What was there is kept in ${keptAs}.` : ""}\n`);
    return 0;
  }
  process.stderr.write("usage: ./shipshape backup [folder] | ./shipshape restore <folder>\n");
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof BackupError || e instanceof ConfigError) {
      process.stderr.write(e.message + "\n");
      process.exit(1);
    }
    throw e;
  },
);
