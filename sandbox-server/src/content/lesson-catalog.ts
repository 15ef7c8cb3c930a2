import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import yaml from "js-yaml";

export interface CatalogLesson {
  /** The lesson's slug: its path under content/lessons without `.mdx` (as the site's collection names it). */
  slug: string;
  title: string;
  order: number;
}

/**
 * The published lessons, read from the same files the site is built from (content/lessons), so an
 * instructor can only pick lessons that exist. Partials (`_name.mdx`) and drafts are left out, as
 * the site leaves them out. Only the frontmatter is read; the site validates the rest at build.
 */
export function loadLessonCatalog(dir: string): CatalogLesson[] {
  const lessons: CatalogLesson[] = [];
  const walk = (sub: string) => {
    let entries: import("node:fs").Dirent[];
    try {
      entries = readdirSync(path.join(dir, sub), { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      if (entry.name.startsWith("_") || entry.name.startsWith(".")) continue;
      const rel = sub ? `${sub}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(rel);
      else if (entry.name.endsWith(".mdx")) {
        const front = frontmatter(readFileSync(path.join(dir, rel), "utf8"));
        if (!front || front.draft === true) continue;
        lessons.push({
          slug: rel.replace(/\.mdx$/, ""),
          title: typeof front.title === "string" ? front.title : rel,
          order: typeof front.order === "number" ? front.order : Number.MAX_SAFE_INTEGER,
        });
      }
    }
  };
  walk("");
  return lessons.sort((a, b) => a.order - b.order || a.slug.localeCompare(b.slug));
}

function frontmatter(text: string): Record<string, unknown> | undefined {
  const m = /^---\r?\n([\s\S]*?)\r?\n---/.exec(text);
  if (!m) return undefined;
  try {
    const data = yaml.load(m[1] ?? "");
    return typeof data === "object" && data !== null ? (data as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
