import path from "node:path";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { SqliteStore, type Store } from "./store.ts";

/** The store the configuration asks for: the SQLite file in the data directory (the default). */
export async function openStore(config: Pick<Config, "SHIPSHAPE_DATA_DIR">, log: Logger): Promise<Store> {
  const store = new SqliteStore(path.join(config.SHIPSHAPE_DATA_DIR, "shipshape.db"));
  if (store.schemaUpgrades.length > 0) log.info("database upgraded", { steps: store.schemaUpgrades });
  return store;
}
