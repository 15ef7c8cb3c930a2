import path from "node:path";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { PostgresStore } from "./postgres-store.ts";
import { SqliteStore, type Store } from "./store.ts";

/**
 * The store the configuration asks for: Postgres when SHIPSHAPE_DATABASE_URL is set (several
 * servers share it), otherwise the SQLite file in the data directory (one server, the default).
 */
export async function openStore(config: Pick<Config, "SHIPSHAPE_DATA_DIR" | "SHIPSHAPE_DATABASE_URL">, log: Logger): Promise<Store> {
  const store = config.SHIPSHAPE_DATABASE_URL
    ? await PostgresStore.open(config.SHIPSHAPE_DATABASE_URL, log.child({ component: "store" }))
    : new SqliteStore(path.join(config.SHIPSHAPE_DATA_DIR, "shipshape.db"));
  if (store.schemaUpgrades.length > 0) log.info("database upgraded", { kind: store.kind, steps: store.schemaUpgrades });
  return store;
}
