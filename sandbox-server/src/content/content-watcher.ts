import { watch, type FSWatcher } from "node:fs";
import type { Logger } from "../log.ts";
import { ContentError } from "./content-files.ts";

/** Editors write a file in several steps (truncate, write, rename): reload once they are done. */
const SETTLE_MS = 150;

/**
 * For authors (`npm run dev`): reloads a folder of YAML content when a file in it changes, and
 * refreshes the map every service already holds, in place, so the next Check or quiz answer uses
 * the new version without a restart. A file with a mistake keeps the last good version and logs
 * the mistake with its file and line, as a start would.
 */
export class ContentWatcher<T> {
  private readonly dir: string;
  private readonly target: Map<string, T>;
  private readonly load: (dir: string) => Map<string, T>;
  private readonly log: Logger;
  private readonly watcher: FSWatcher;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: { dir: string; target: Map<string, T>; load: (dir: string) => Map<string, T>; log: Logger }) {
    this.dir = options.dir;
    this.target = options.target;
    this.load = options.load;
    this.log = options.log.child({ component: "content" });
    const dir = this.dir;
    this.watcher = watch(dir, () => this.schedule());
    this.watcher.on("error", (e) => this.log.warn("content folder no longer watched", { dir, error: String(e) }));
  }

  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.reload(), SETTLE_MS);
  }

  /** Loads the folder again; the map changes only when every file in it is valid. */
  reload(): void {
    let fresh: Map<string, T>;
    try {
      fresh = this.load(this.dir);
    } catch (e) {
      if (!(e instanceof ContentError)) throw e;
      this.log.error("content has a mistake; keeping the last good version", { dir: this.dir, error: e.message });
      return;
    }
    this.target.clear();
    for (const [id, item] of fresh) this.target.set(id, item);
    this.log.info("content reloaded", { dir: this.dir, items: fresh.size });
  }

  close(): void {
    clearTimeout(this.timer);
    this.watcher.close();
  }
}
