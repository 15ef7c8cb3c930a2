import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { z } from "zod";

/**
 * A Killercoda scenario folder, read into memory: index.json says which files are the intro, the
 * steps, their verify scripts, the init scripts and the assets. Only what the import uses is
 * modelled; unknown keys are kept (Killercoda adds fields over time) and ignored.
 */

const stepFilesSchema = z.looseObject({
  title: z.string().optional(),
  text: z.string().optional(),
  verify: z.string().optional(),
  background: z.string().optional(),
  foreground: z.string().optional(),
});

const assetSchema = z.looseObject({
  file: z.string().min(1),
  target: z.string().min(1),
  chmod: z.string().optional(),
});

export const scenarioIndexSchema = z.looseObject({
  title: z.string().min(1, "index.json needs a title"),
  description: z.string().optional(),
  details: z
    .looseObject({
      intro: stepFilesSchema.optional(),
      steps: z.array(stepFilesSchema).default([]),
      finish: stepFilesSchema.optional(),
      assets: z.record(z.string(), z.array(assetSchema)).optional(),
    })
    .default({ steps: [] }),
  backend: z.looseObject({ imageid: z.string().optional() }).optional(),
});
export type ScenarioIndex = z.infer<typeof scenarioIndexSchema>;

export interface ScenarioStep {
  title: string;
  text: string;
  verify: string | undefined;
  background: string | undefined;
  foreground: string | undefined;
}

export interface ScenarioAsset {
  host: string;
  /** Path relative to the scenario's assets/ folder. */
  file: string;
  /** Target folder on the host (Killercoda copies the file into it). */
  target: string;
  chmod: string | undefined;
  content: Buffer;
}

export interface Scenario {
  folder: string;
  index: ScenarioIndex;
  title: string;
  description: string;
  imageId: string;
  intro: ScenarioStep;
  steps: ScenarioStep[];
  finish: string | undefined;
  assets: ScenarioAsset[];
  /** Assets entries naming a host other than host01 (refused later, with their names). */
  otherHosts: string[];
  /** Files index.json names that are not there. */
  missing: string[];
}

/** Thrown for a folder that is not a scenario at all (no index.json, broken JSON). */
export class ScenarioReadError extends Error {}

export function readScenario(folder: string): Scenario {
  const indexFile = path.join(folder, "index.json");
  if (!existsSync(indexFile)) throw new ScenarioReadError(`${folder} has no index.json, so it is not a Killercoda scenario folder.`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(indexFile, "utf8"));
  } catch (e) {
    throw new ScenarioReadError(`${indexFile} is not valid JSON: ${(e as Error).message}`);
  }
  const parsed = scenarioIndexSchema.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new ScenarioReadError(`${indexFile}: ${first?.path.join(".") || "(top)"}: ${first?.message}`);
  }
  const index = parsed.data;
  const missing: string[] = [];
  const read = (rel: string | undefined): string | undefined => {
    if (!rel) return undefined;
    const file = inside(folder, rel);
    if (!file || !existsSync(file)) {
      missing.push(rel);
      return undefined;
    }
    return readFileSync(file, "utf8");
  };
  const step = (s: z.infer<typeof stepFilesSchema> | undefined, fallbackTitle: string): ScenarioStep => ({
    title: s?.title?.trim() || fallbackTitle,
    text: read(s?.text) ?? "",
    verify: read(s?.verify),
    background: read(s?.background),
    foreground: read(s?.foreground),
  });

  const assets: ScenarioAsset[] = [];
  const otherHosts: string[] = [];
  for (const [host, entries] of Object.entries(index.details.assets ?? {})) {
    if (host !== "host01") {
      otherHosts.push(host);
      continue;
    }
    for (const entry of entries) {
      const files = expandAsset(path.join(folder, "assets"), entry.file);
      if (files.length === 0) missing.push(`assets/${entry.file}`);
      for (const rel of files) {
        assets.push({ host, file: rel, target: entry.target, chmod: entry.chmod, content: readFileSync(path.join(folder, "assets", rel)) });
      }
    }
  }

  return {
    folder,
    index,
    title: index.title.trim(),
    description: index.description?.trim() ?? "",
    imageId: index.backend?.imageid ?? "ubuntu",
    intro: step(index.details.intro, "Introduction"),
    steps: index.details.steps.map((s, i) => step(s, `Step ${i + 1}`)),
    finish: read(index.details.finish?.text),
    assets,
    otherHosts,
    missing,
  };
}

/** A path index.json names, kept inside the scenario folder. */
function inside(folder: string, rel: string): string | undefined {
  const file = path.resolve(folder, rel);
  return file.startsWith(path.resolve(folder) + path.sep) ? file : undefined;
}

/**
 * Killercoda's `file` is a name, a folder or a glob (`*`, `*.sh`, `app/*`); folders are copied
 * whole. Returns paths relative to assets/.
 */
export function expandAsset(assetsDir: string, pattern: string): string[] {
  if (!existsSync(assetsDir)) return [];
  const all = listFiles(assetsDir, "");
  if (!/[*?]/.test(pattern)) {
    const clean = pattern.replace(/^\.\//, "").replace(/\/+$/, "");
    return all.filter((f) => f === clean || f.startsWith(`${clean}/`));
  }
  const re = new RegExp(`^${pattern.replace(/^\.\//, "").replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*").replace(/\?/g, "[^/]")}$`);
  const top = new Set<string>();
  for (const f of all) {
    // A glob matches top-level names; a matched folder brings its whole tree.
    const parts = f.split("/");
    for (let i = 1; i <= parts.length; i++) {
      const prefix = parts.slice(0, i).join("/");
      if (re.test(prefix)) {
        top.add(f);
        break;
      }
    }
  }
  return [...top].sort();
}

function listFiles(root: string, rel: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(path.join(root, rel)).sort()) {
    const sub = rel ? `${rel}/${name}` : name;
    if (statSync(path.join(root, sub)).isDirectory()) out.push(...listFiles(root, sub));
    else out.push(sub);
  }
  return out;
}
