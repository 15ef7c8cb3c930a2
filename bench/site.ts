/**
 * The site as a learner's browser sees it: how much JavaScript a lesson page ships before and after
 * its terminal loads, and Lighthouse's accessibility, performance, best-practice and SEO audits of
 * the home page, a lesson and the playground, all in Debian's Chromium against the real server.
 *
 *   node bench/site.ts [--no-write]
 *
 * Lighthouse (npm `lighthouse`) is not a dependency of the product: it is installed on first use into
 * .cache/bench-lighthouse (git-ignored), like the terminal bench's peer. Needs the site built
 * (`npx astro build`) and the set-up done. Writes bench/results/site.json and two sections of
 * docs/BENCHMARKS.md ("## Lesson page weight" and "## Lighthouse"); nothing else in that file.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import path from "node:path";
import { parseArgs, promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { chromium, type Response } from "playwright-core";
import { repoRoot, startServer, stopAll } from "./lib/server.ts";
import { removeBenchContainers } from "./lib/docker.ts";

const run = promisify(execFile);
const CHROMIUM = process.env.SHIPSHAPE_CHROMIUM ?? "/usr/bin/chromium";
const CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run", "--disable-component-update", "--disable-sync"];
const LIGHTHOUSE_DIR = path.join(repoRoot, ".cache", "bench-lighthouse");
const LIGHTHOUSE = "lighthouse@13";
const LIGHTHOUSE_CLI = path.join(LIGHTHOUSE_DIR, "node_modules", "lighthouse", "cli", "index.js");
const LESSON = "/lessons/first-containers/";
const PAGES = [
  { name: "home", path: "/" },
  { name: "lesson", path: LESSON },
  { name: "playground", path: "/playground/" },
];
const CATEGORIES = ["performance", "accessibility", "best-practices", "seo"] as const;
const RESULTS = path.join(repoRoot, "bench", "results", "site.json");

const { values: args } = parseArgs({ options: { "no-write": { type: "boolean", default: false } } });
const log = (line: string) => process.stderr.write(`[site] ${line}\n`);

interface Weight {
  files: number;
  bytes: number;
  gzipped: number;
}

/** Sums the JavaScript responses (body size, and gzipped with Node's zlib as a server would send it). */
async function sumScripts(responses: Response[]): Promise<Weight> {
  const w: Weight = { files: 0, bytes: 0, gzipped: 0 };
  for (const r of responses) {
    const body = await r.body().catch(() => null);
    if (!body) continue;
    w.files++;
    w.bytes += body.length;
    w.gzipped += gzipSync(body).length;
  }
  return w;
}

/** A phone-sized viewport puts the lesson's terminal below the fold, so its lazy loading can be seen. */
async function pageWeight(base: string): Promise<{ beforeTerminal: Weight; terminal: Weight }> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS.filter((f) => f !== "--headless=new") });
  try {
    const page = await browser.newPage({ viewport: { width: 390, height: 700 } });
    const scripts: Response[] = [];
    page.on("response", (r) => {
      if (new URL(r.url()).pathname.endsWith(".js")) scripts.push(r);
    });
    await page.goto(base + LESSON, { waitUntil: "networkidle" });
    const before = scripts.splice(0);
    await page.locator('[data-testid="terminal"]').first().scrollIntoViewIfNeeded();
    await page.waitForFunction(() => document.querySelector('[data-testid="terminal"] .xterm'), undefined, { timeout: 30_000 });
    await page.waitForLoadState("networkidle");
    return { beforeTerminal: await sumScripts(before), terminal: await sumScripts(scripts) };
  } finally {
    await browser.close();
  }
}

async function ensureLighthouse(): Promise<string> {
  if (!existsSync(LIGHTHOUSE_CLI)) {
    log(`installing ${LIGHTHOUSE} into ${path.relative(repoRoot, LIGHTHOUSE_DIR)} (first run only)`);
    mkdirSync(LIGHTHOUSE_DIR, { recursive: true });
    writeFileSync(path.join(LIGHTHOUSE_DIR, "package.json"), JSON.stringify({ name: "shipshape-bench-lighthouse", private: true }) + "\n");
    // No install scripts: Lighthouse drives the Chromium we name, it downloads nothing.
    await run("npm", ["install", "--no-save", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error", LIGHTHOUSE], {
      cwd: LIGHTHOUSE_DIR,
      timeout: 300_000,
    });
  }
  const pkg = JSON.parse(readFileSync(path.join(LIGHTHOUSE_DIR, "node_modules", "lighthouse", "package.json"), "utf8")) as { version: string };
  return pkg.version;
}

interface Audit {
  id: string;
  title: string;
  score: number | null;
  scoreDisplayMode: string;
  displayValue?: string;
  numericValue?: number;
}
interface LighthouseReport {
  categories: Record<string, { score: number | null; auditRefs: Array<{ id: string; weight: number }> }>;
  audits: Record<string, Audit>;
  runtimeError?: { message: string };
}

interface PageScores {
  page: string;
  form: "mobile" | "desktop";
  scores: Record<(typeof CATEGORIES)[number], number | null>;
  fcp_ms: number;
  lcp_ms: number;
  tbt_ms: number;
  cls: number;
  speed_index_ms: number;
  total_kb: number;
  /** Weighted audits of the accessibility category that did not pass, by title. */
  accessibility_failures: string[];
}

async function lighthouse(url: string, page: string, form: "mobile" | "desktop"): Promise<PageScores> {
  const dir = mkdtempSync(path.join(tmpdir(), "shipshape-lighthouse-"));
  const out = path.join(dir, "report.json");
  try {
    await run(
      process.execPath,
      [
        LIGHTHOUSE_CLI,
        url,
        "--quiet",
        "--output=json",
        `--output-path=${out}`,
        `--only-categories=${CATEGORIES.join(",")}`,
        `--chrome-flags=${CHROMIUM_FLAGS.join(" ")}`,
        ...(form === "desktop" ? ["--preset=desktop"] : []),
      ],
      { timeout: 180_000, env: { ...process.env, CHROME_PATH: CHROMIUM, TMPDIR: dir } },
    );
    const report = JSON.parse(readFileSync(out, "utf8")) as LighthouseReport;
    if (report.runtimeError) throw new Error(`lighthouse on ${url}: ${report.runtimeError.message}`);
    const a = report.audits;
    const failures = report.categories.accessibility!.auditRefs
      .filter((ref) => ref.weight > 0 && a[ref.id]?.score !== null && (a[ref.id]?.score ?? 1) < 1)
      .map((ref) => a[ref.id]!.title);
    return {
      page,
      form,
      scores: Object.fromEntries(CATEGORIES.map((c) => [c, report.categories[c]?.score == null ? null : Math.round(report.categories[c]!.score! * 100)])) as PageScores["scores"],
      fcp_ms: Math.round(a["first-contentful-paint"]?.numericValue ?? Number.NaN),
      lcp_ms: Math.round(a["largest-contentful-paint"]?.numericValue ?? Number.NaN),
      tbt_ms: Math.round(a["total-blocking-time"]?.numericValue ?? Number.NaN),
      cls: +(a["cumulative-layout-shift"]?.numericValue ?? Number.NaN).toFixed(3),
      speed_index_ms: Math.round(a["speed-index"]?.numericValue ?? Number.NaN),
      total_kb: +((a["total-byte-weight"]?.numericValue ?? Number.NaN) / 1024).toFixed(1),
      accessibility_failures: failures,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Replaces one `## heading` section of docs/BENCHMARKS.md (up to the next `## `), or appends it. */
function writeSection(heading: string, body: string): void {
  const file = path.join(repoRoot, "docs", "BENCHMARKS.md");
  const current = readFileSync(file, "utf8");
  const start = current.indexOf(`\n${heading}\n`);
  if (start < 0) {
    writeFileSync(file, current.trimEnd() + "\n\n" + body.trimEnd() + "\n");
    return;
  }
  const next = current.indexOf("\n## ", start + heading.length + 2);
  writeFileSync(file, current.slice(0, start + 1) + body.trimEnd() + "\n" + (next < 0 ? "" : current.slice(next)));
}

const kb = (n: number) => `${(n / 1000).toFixed(1)} KB`;
const score = (n: number | null) => (n === null ? "n/a" : String(n));

async function main(): Promise<void> {
  if (!existsSync(path.join(repoRoot, "dist", "index.html"))) throw new Error("the site is not built; run `npx astro build` first");
  const version = await ensureLighthouse();
  const server = await startServer({ SHIPSHAPE_CONTENT_DIR: path.join(repoRoot, "content"), SHIPSHAPE_WARM_POOL: "1" });
  try {
    log(`server at ${server.url}; measuring the lesson page's JavaScript`);
    const weight = await pageWeight(server.url);
    const audits: PageScores[] = [];
    for (const form of ["mobile", "desktop"] as const) {
      for (const p of PAGES) {
        log(`lighthouse ${form} ${p.path}`);
        audits.push(await lighthouse(server.url + p.path, p.name, form));
      }
    }
    const when = new Date().toISOString().slice(0, 10);
    const machine = `${cpus().length} cores (${cpus()[0]?.model.trim() ?? "unknown CPU"}), ${Math.round(totalmem() / 1024 ** 3)} GiB`;
    const results = { measured_at: new Date().toISOString(), machine, lighthouse: version, page_weight: weight, audits };
    process.stdout.write(JSON.stringify(results, null, 2) + "\n");
    if (args["no-write"]) return;
    writeFileSync(RESULTS, JSON.stringify(results, null, 2) + "\n");

    writeSection(
      "## Lesson page weight",
      `## Lesson page weight

\`node bench/site.ts\` (${when}, ${machine}), Debian's Chromium through playwright-core, viewport 390×700 so
the terminal starts below the fold, on \`${LESSON}\` served by \`node sandbox-server/src/main.ts\`. It sums
the responses ending in \`.js\`, bodies gzipped with Node's zlib:

| what | files | bytes | gzipped |
|---|---|---|---|
| JavaScript the page loads before its terminal is scrolled into view | ${weight.beforeTerminal.files} | ${kb(weight.beforeTerminal.bytes)} | ${kb(weight.beforeTerminal.gzipped)} |
| JavaScript loaded when the terminal comes into view (xterm and addons, terminal client) | ${weight.terminal.files} | ${kb(weight.terminal.bytes)} | ${kb(weight.terminal.gzipped)} |
`,
    );
    const rows = audits
      .map((r) => `| ${r.page} | ${r.form} | ${CATEGORIES.map((c) => score(r.scores[c])).join(" | ")} | ${r.fcp_ms} | ${r.lcp_ms} | ${r.tbt_ms} | ${r.cls} | ${r.total_kb} |`)
      .join("\n");
    const failures = [...new Set(audits.flatMap((r) => r.accessibility_failures.map((f) => `${r.page} (${r.form}): ${f}`)))];
    writeSection(
      "## Lighthouse",
      `## Lighthouse

\`node bench/site.ts\` (${when}, ${machine}), Lighthouse ${version} driving Debian's Chromium headless
(\`${CHROMIUM_FLAGS.join(" ")}\`) against the real server (built site, API and WebSockets on one origin).
*mobile* is Lighthouse's default (a phone, simulated slow 4G and a 4× slower CPU); *desktop* is its
desktop preset. The playground and the lesson start a real sandbox while they are audited. Scores out of 100;
times in ms; weight is everything the page transferred while audited, in KiB.

| page | form | performance | accessibility | best practices | SEO | FCP | LCP | TBT | CLS | weight |
|---|---|---|---|---|---|---|---|---|---|---|
${rows}

${failures.length ? `Accessibility audits that did not pass:\n\n${failures.map((f) => `- ${f}`).join("\n")}\n` : "Every weighted accessibility audit passed on every page.\n"}
The first run (2026-11-22) found two faults, both fixed since: on a phone the header's logo link lost
its name when its text was hidden (now labelled "shipshape, home"), and a lesson's header re-wrapped when the
server's progress arrived, a layout shift of 0.147 on a phone (the progress now has its own line there).

Lighthouse's accessibility score is axe-core's automated subset: it cannot judge a keyboard walk or how a
screen reader announces the terminal; the browser tests do those (\`tests/browser/keyboard.test.ts\` walks a
lesson by keyboard, and every terminal test reads the shell through xterm's screen-reader tree).
`,
    );
    log("wrote docs/BENCHMARKS.md and bench/results/site.json");
  } finally {
    await server.stop();
    await removeBenchContainers();
  }
}

process.once("SIGINT", () => void stopAll().then(() => process.exit(130)));
main().catch(async (e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  await stopAll();
  process.exit(1);
});
