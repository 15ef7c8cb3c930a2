import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";

/**
 * The import graph of the site (src/), the sandbox server (sandbox-server/src/) and what both
 * speak (contracts/), checked against the layers of docs/architecture.md. Reads the files as text:
 * no compiler, no bundler, so the check runs in a few milliseconds and cannot be fooled by a
 * build cache.
 */

export interface Import {
  /** The importing file, relative to the root. */
  from: string;
  /** The imported file relative to the root, or the package name for a bare specifier. */
  to: string;
  /** `import type`, or every name imported `type X`: erased before the code runs. */
  typeOnly: boolean;
  line: number;
}

/** A part of the house; every file belongs to exactly one (the longest matching prefix). */
interface Unit {
  name: string;
  /** Path prefixes (folders end with "/") or exact files. */
  paths: string[];
  /** Units this one may import; a unit may always import itself. */
  mayImport: string[];
}

/**
 * Bottom to top. Server: contracts and common helpers, then runtime, store and the content loaders
 * side by side (none imports another), then the domain (sessions; grading and preview on it;
 * workshops), then the transport, then the composition root that wires them.
 * Site: pages and components on the browser code (client) and the build-time helpers (lib),
 * all on contracts. Nothing of the site imports the server, nor the server the site.
 */
export const UNITS: Unit[] = [
  { name: "contracts", paths: ["contracts/"], mayImport: [] },
  {
    name: "common",
    paths: ["sandbox-server/src/common/", "sandbox-server/src/errors.ts", "sandbox-server/src/log.ts", "sandbox-server/src/metrics.ts", "sandbox-server/src/config.ts"],
    mayImport: ["contracts"],
  },
  { name: "runtime", paths: ["sandbox-server/src/runtime/"], mayImport: ["common", "contracts"] },
  { name: "store", paths: ["sandbox-server/src/store/"], mayImport: ["common", "contracts"] },
  { name: "content", paths: ["sandbox-server/src/content/"], mayImport: ["common", "contracts"] },
  { name: "sessions", paths: ["sandbox-server/src/sessions/"], mayImport: ["runtime", "store", "common", "contracts"] },
  { name: "grading", paths: ["sandbox-server/src/grading/"], mayImport: ["sessions", "runtime", "store", "common", "contracts"] },
  { name: "preview", paths: ["sandbox-server/src/preview/"], mayImport: ["sessions", "runtime", "common", "contracts"] },
  { name: "inspector", paths: ["sandbox-server/src/inspector/"], mayImport: ["sessions", "runtime", "common", "contracts"] },
  { name: "workshops", paths: ["sandbox-server/src/workshops/"], mayImport: ["sessions", "store", "content", "common", "contracts"] },
  { name: "transport", paths: ["sandbox-server/src/transport/"], mayImport: ["sessions", "grading", "preview", "inspector", "workshops", "common", "contracts"] },
  {
    name: "server-root",
    paths: ["sandbox-server/src/"],
    mayImport: ["transport", "sessions", "grading", "preview", "inspector", "workshops", "runtime", "store", "content", "common", "contracts"],
  },
  { name: "client", paths: ["src/client/"], mayImport: ["site-lib", "contracts"] },
  { name: "site-lib", paths: ["src/lib/", "src/schemas/"], mayImport: ["contracts"] },
  { name: "site", paths: ["src/"], mayImport: ["client", "site-lib", "contracts"] },
  // The benchmarks drive the real server from outside: they may use any of it, but reach the
  // engine only through the runtime or the floor's one raw exec (bench/lib/engine-floor.ts).
  {
    name: "bench",
    paths: ["bench/"],
    mayImport: ["bench-floor", "server-root", "transport", "sessions", "grading", "preview", "workshops", "runtime", "store", "content", "common", "contracts"],
  },
  { name: "bench-floor", paths: ["bench/lib/engine-floor.ts"], mayImport: [] },
];

/** Only the runtime talks to the Docker engine (docs/architecture.md), and the bench's floor, which measures the engine itself. */
const PACKAGE_OWNERS: Record<string, string[]> = { dockerode: ["runtime", "bench-floor"] };

const SOURCE = /\.(ts|mts|astro|mjs)$/;

export function unitOf(file: string): Unit | undefined {
  let best: Unit | undefined;
  let bestLength = -1;
  for (const unit of UNITS) {
    for (const p of unit.paths) {
      const hit = p.endsWith("/") ? file.startsWith(p) : file === p;
      if (hit && p.length > bestLength) {
        best = unit;
        bestLength = p.length;
      }
    }
  }
  return best;
}

function sourceFiles(root: string, dir: string): string[] {
  const full = path.join(root, dir);
  if (!existsSync(full)) return [];
  const out: string[] = [];
  for (const entry of readdirSync(full)) {
    const rel = path.posix.join(dir, entry);
    if (entry === "node_modules" || entry.startsWith(".")) continue;
    if (statSync(path.join(root, rel)).isDirectory()) out.push(...sourceFiles(root, rel));
    else if (SOURCE.test(entry) && !entry.endsWith(".d.ts")) out.push(rel);
  }
  return out;
}

/** Block comments go (a JSDoc example such as `import x from "./Dockerfile?raw"` is no import); strings stay. */
function withoutBlockComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, " "));
}

const STATIC_IMPORT = /^\s*(import|export)\s+(type\s+)?([^;]*?)\s*from\s*["']([^"']+)["']/gm;
const SIDE_EFFECT_IMPORT = /^\s*import\s*["']([^"']+)["']/gm;
const DYNAMIC_IMPORT = /import\(\s*["']([^"']+)["']\s*\)/g;

/** Every import of one file's text; `from` is the file's path relative to the root. */
export function importsOf(from: string, text: string): Import[] {
  const code = withoutBlockComments(text);
  const lineAt = (index: number) => code.slice(0, index).split("\n").length;
  const found: Import[] = [];
  const add = (spec: string, typeOnly: boolean, index: number) => {
    const clean = spec.replace(/\?.*$/, "");
    const to = clean.startsWith(".") ? path.posix.normalize(path.posix.join(path.posix.dirname(from), clean)) : packageName(clean);
    found.push({ from, to, typeOnly, line: lineAt(index) });
  };
  for (const m of code.matchAll(STATIC_IMPORT)) {
    const clause = m[3] ?? "";
    const names = /\{([^}]*)\}/.exec(clause)?.[1];
    const allTypes =
      names !== undefined &&
      !/^[\s\w$]+,/.test(clause) && // no default import beside the braces
      names.split(",").map((n) => n.trim()).filter(Boolean).every((n) => n.startsWith("type "));
    add(m[4]!, Boolean(m[2]) || allTypes, m.index);
  }
  for (const m of code.matchAll(SIDE_EFFECT_IMPORT)) add(m[1]!, false, m.index);
  for (const m of code.matchAll(DYNAMIC_IMPORT)) add(m[1]!, false, m.index);
  return found;
}

function packageName(spec: string): string {
  const parts = spec.split("/");
  return spec.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]!;
}

export function importGraph(root: string): Import[] {
  const files = ["contracts", "sandbox-server/src", "src", "bench"].flatMap((d) => sourceFiles(root, d));
  return files.flatMap((f) => importsOf(f, readFileSync(path.join(root, f), "utf8")));
}

/** Each import that runs against the layers, as a sentence naming both files and the rule. */
export function layerViolations(root: string, graph: Import[] = importGraph(root)): string[] {
  const problems: string[] = [];
  const importsZod = new Map<string, boolean>();
  const pullsZod = (file: string): boolean => {
    if (!importsZod.has(file)) {
      importsZod.set(file, false); // a cycle is answered by the other paths
      const own = graph.filter((i) => i.from === file && !i.typeOnly);
      importsZod.set(file, own.some((i) => i.to === "zod" || (i.to.includes("/") && pullsZod(i.to))));
    }
    return importsZod.get(file)!;
  };
  for (const i of graph) {
    const from = unitOf(i.from);
    if (!from) continue;
    const where = `${i.from}:${i.line}`;
    if (!i.to.includes("/") || !/\.(ts|mts|astro|mjs|js)$/.test(i.to)) {
      // A package, or a file that is no source (a stylesheet, ?raw text).
      const owners = PACKAGE_OWNERS[i.to];
      if (owners && !owners.includes(from.name)) problems.push(`${where} imports ${i.to}: only ${owners.join(", ")} may (${from.name} may not)`);
      continue;
    }
    const to = unitOf(i.to);
    if (!to) {
      problems.push(`${where} imports ${i.to}, which is outside contracts/, sandbox-server/src/ and src/`);
      continue;
    }
    if (to.name !== from.name && !from.mayImport.includes(to.name)) {
      problems.push(`${where} imports ${i.to}: ${from.name} may import only ${[from.name, ...from.mayImport].join(", ")}, not ${to.name}`);
    }
    // The browser loads what src/client imports at run time: zod has no place in the page.
    if (from.name === "client" && to.name === "contracts" && !i.typeOnly && pullsZod(i.to)) {
      problems.push(`${where} imports ${i.to} at run time, which loads zod into the page: import only types from it (import type), or move the value to a file without zod`);
    }
  }
  return problems;
}
