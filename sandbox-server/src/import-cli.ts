import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseExercise } from "./content/exercise-loader.ts";
import { convertScenario, slugFromTitle, type AvailableImages, type ImportResult } from "./content/killercoda/convert.ts";
import { readScenario, ScenarioReadError } from "./content/killercoda/scenario.ts";

/**
 * `./shipshape import <folder> [--slug name] [--content dir] [--order n] [--force]`: a Killercoda
 * scenario folder becomes content/lessons/<slug>.mdx and content/exercises/<slug>-stepN.yaml.
 *
 * A CLI rather than a loader that serves scenario folders as they are: the author sees the
 * lesson and exercises as files, reviews them, fixes what was approximated and commits them, so
 * the course in git is what learners get; and the import can refuse a scenario with its reasons
 * before anything is written, instead of a page that fails in front of a learner.
 */

const repoRoot = path.resolve(import.meta.dirname, "../..");

export class ImportError extends Error {}

/** The offline registry mirror's images: one folder per repository, its tags in `tags`. */
export function mirroredImages(standinsDir = path.join(repoRoot, "sandbox-server/images/standins")): AvailableImages {
  const images = new Map<string, Set<string>>();
  for (const name of readdirSync(standinsDir)) {
    const tagsFile = path.join(standinsDir, name, "tags");
    if (!existsSync(tagsFile)) continue;
    // A stand-in outside Docker Hub's library names its repository (jupyter/scipy-notebook).
    const repositoryFile = path.join(standinsDir, name, "repository");
    const repository = existsSync(repositoryFile) ? readFileSync(repositoryFile, "utf8").trim().replace(/^library\//, "") : name;
    images.set(repository, new Set(readFileSync(tagsFile, "utf8").split(/\s+/).filter(Boolean)));
  }
  return images;
}

export interface ImportRequest {
  folder: string;
  contentDir: string;
  slug?: string | undefined;
  order?: number | undefined;
  force?: boolean | undefined;
  available?: AvailableImages | undefined;
}

/** Converts and, when nothing is refused, writes the files. Returns what it decided either way. */
export function importScenario(request: ImportRequest): ImportResult & { written: string[] } {
  const scenario = readScenario(request.folder);
  const slug = request.slug ?? slugFromTitle(scenario.title);
  const result = convertScenario(scenario, { slug, available: request.available ?? mirroredImages(), order: request.order });
  if (result.refusals.length > 0) return { ...result, written: [] };
  const lessonFile = path.join(request.contentDir, "lessons", `${slug}.mdx`);
  const files: Array<[string, string]> = [[lessonFile, result.lesson]];
  for (const e of result.exercises) {
    const file = path.join(request.contentDir, "exercises", `${e.id}.yaml`);
    // The YAML must load exactly as the server will load it; a converter bug stops here, not at boot.
    parseExercise(e.yaml, file);
    files.push([file, e.yaml]);
  }
  const clobbered = files.map(([f]) => f).filter((f) => existsSync(f));
  if (clobbered.length > 0 && !request.force) {
    throw new ImportError(`These files exist already: ${clobbered.join(", ")}. Choose another --slug, or add --force to replace them.`);
  }
  for (const [file, text] of files) {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
  }
  return { ...result, written: files.map(([f]) => f) };
}

function parseArgs(argv: string[]): ImportRequest {
  const callerDir = process.env.SHIPSHAPE_CALLER_DIR ?? process.cwd();
  let folder: string | undefined;
  const request: Partial<ImportRequest> = { contentDir: path.join(repoRoot, "content") };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new ImportError(`${a} needs a value.`);
      return v;
    };
    if (a === "--slug") request.slug = value();
    else if (a === "--content") request.contentDir = path.resolve(callerDir, value());
    else if (a === "--order") {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1) throw new ImportError("--order takes a whole number from 1.");
      request.order = n;
    } else if (a === "--force") request.force = true;
    else if (a.startsWith("-")) throw new ImportError(`Unknown option ${a}.`);
    else if (folder === undefined) folder = path.resolve(callerDir, a);
    else throw new ImportError(`One scenario folder at a time (got ${folder} and ${a}).`);
  }
  if (!folder) throw new ImportError("Name the scenario folder: ./shipshape import <folder> [--slug name] [--content dir] [--order n] [--force]");
  return { ...request, folder } as ImportRequest;
}

function main(argv: string[]): number {
  const request = parseArgs(argv);
  const result = importScenario(request);
  if (result.refusals.length > 0) {
    process.stderr.write(`Not imported: ${request.folder} cannot work in a shipshape sandbox.\n${result.refusals.map((r) => `  - ${r}`).join("\n")}\n`);
    return 1;
  }
  const rel = (f: string) => path.relative(process.env.SHIPSHAPE_CALLER_DIR ?? process.cwd(), f);
  process.stdout.write(`Imported "${result.slug}":\n${result.written.map((f) => `  ${rel(f)}`).join("\n")}\n`);
  if (result.warnings.length > 0) process.stdout.write(`Read before you commit:\n${result.warnings.map((w) => `  - ${w}`).join("\n")}\n`);
  process.stdout.write("Prove it with lesson CI before committing (docs/authoring.md, \"Importing a Killercoda scenario\").\n");
  return 0;
}

// Run as a command (not when a test imports importScenario).
if (process.argv[1] && path.resolve(process.argv[1]) === import.meta.filename) {
  try {
    process.exit(main(process.argv.slice(2)));
  } catch (e) {
    if (e instanceof ImportError || e instanceof ScenarioReadError) {
      process.stderr.write(e.message + "\n");
      process.exit(1);
    }
    throw e;
  }
}
