import yaml from "js-yaml";
import path from "node:path";
import type { Exercise } from "../../../../contracts/content/exercise-schema.ts";
import type { Scenario, ScenarioAsset, ScenarioStep } from "./scenario.ts";

/**
 * Turns a Killercoda scenario into one shipshape lesson (MDX) and one exercise per step that has
 * a verify.sh. Pure: it reads nothing and writes nothing, so the CLI and the tests share it.
 *
 * What a sandbox cannot give the scenario is a refusal with its reason, decided here, before any
 * file is written: a lesson that imports must also run.
 */

/** Images the offline registry mirror serves: repository → tags (sandbox-server/images/standins). */
export type AvailableImages = ReadonlyMap<string, ReadonlySet<string>>;

export interface ImportOptions {
  slug: string;
  available: AvailableImages;
  /** Position in the course outline; imported lessons go after ours unless told otherwise. */
  order?: number;
}

export interface ImportedExercise {
  id: string;
  exercise: Exercise;
  yaml: string;
}

export interface ImportResult {
  slug: string;
  /** Reasons the scenario cannot work here; when any, nothing is written. */
  refusals: string[];
  /** What was approximated; the author reads them before committing. */
  warnings: string[];
  lesson: string;
  exercises: ImportedExercise[];
}

export const SLUG_PATTERN = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

export function slugFromTitle(title: string): string {
  return (
    title
      .toLowerCase()
      .normalize("NFKD")
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 48)
      .replace(/-+$/, "") || "scenario"
  );
}

export function convertScenario(scenario: Scenario, options: ImportOptions): ImportResult {
  const { slug } = options;
  const refusals: string[] = [];
  const warnings: string[] = [];
  if (!SLUG_PATTERN.test(slug) || slug.length > 48) refusals.push(`The slug "${slug}" must be lower-case words joined by dashes, at most 48 characters (--slug name).`);

  // ---- what a shipshape sandbox cannot be -------------------------------------------------
  const imageId = scenario.imageId;
  if (/kubernetes|k8s|kubeadm|minikube|\bkind\b|k3s/i.test(imageId)) {
    refusals.push(
      `It runs on a Kubernetes backend (backend.imageid "${imageId}"). A shipshape sandbox is one Debian machine with its own Docker engine; there is no cluster, kubectl or kubelet in it.`,
    );
  } else if (!/^(ubuntu|debian)([-:.\w]*)$/i.test(imageId)) {
    refusals.push(
      `Its backend image "${imageId}" is not one shipshape has. Sandboxes are Debian machines with Docker (Killercoda's "ubuntu" backend maps to them); other environments cannot be provided.`,
    );
  }
  const everything = allText(scenario);
  if (scenario.otherHosts.length > 0) {
    refusals.push(
      `It places assets on ${scenario.otherHosts.join(", ")}. A shipshape sandbox is a single machine (host01); a second host cannot be provided.`,
    );
  }
  const secondHost = everything.filter((t) => /\bhost0[2-9]\b|\bnode0?[1-9]\b.*ssh|ssh\s+\S*host0[2-9]/.test(t.text));
  if (secondHost.length > 0 && !scenario.otherHosts.length) {
    refusals.push(
      `It uses a second host (${secondHost.map((t) => t.where).slice(0, 3).join(", ")} mention host02 or similar). A shipshape sandbox is a single machine (host01).`,
    );
  }
  for (const m of scenario.missing) refusals.push(`index.json names ${m}, which is not in the folder.`);
  if (scenario.steps.length === 0) refusals.push("index.json lists no steps (details.steps).");

  const missingImages = imagesNotMirrored(everything, options.available);
  for (const miss of missingImages) {
    const have = options.available.get(miss.repo);
    refusals.push(
      `It uses the image ${miss.ref} (${miss.where}), which the offline registry mirror does not have` +
        (have ? ` (it has ${miss.repo} with tags ${[...have].join(", ")})` : "") +
        `. Available: ${[...options.available.keys()].sort().join(", ")}. Change the scenario to one of them, or add a stand-in under sandbox-server/images/standins/.`,
    );
  }

  // ---- the exercises: one per step with a verify.sh ----------------------------------------
  const solutionAsset = scenario.assets.find((a) => path.basename(a.file) === "solution.sh");
  const solutionPath = solutionAsset ? assetPath(solutionAsset) : undefined;
  const setup = startingState(scenario);
  const exercises: ImportedExercise[] = [];
  let previous: string | undefined;
  scenario.steps.forEach((step, i) => {
    const n = i + 1;
    if (step.foreground) warnings.push(`Step ${n} has a foreground script; it is shown as a Run button at the start of the step, not typed by itself.`);
    if (!step.verify) {
      if (step.background) warnings.push(`Step ${n} has a background script but no verify.sh; its background script is not run.`);
      return;
    }
    const id = `${slug}-step${n}`;
    const commands = execBlocks(step.text);
    let solution = commands.join("\n");
    if (!solution && solutionPath) solution = `bash ${shellQuote(solutionPath)}`;
    if (!solution) {
      warnings.push(`Step ${n} has no {{exec}} command and the scenario ships no assets/solution.sh: write its reference solution in content/exercises/${id}.yaml.`);
      solution = `echo "No reference solution for step ${n} yet: write one in content/exercises/${id}.yaml." >&2\nexit 1`;
    }
    let stepSetup: string | undefined;
    const first = exercises.length === 0;
    if (first) stepSetup = setup;
    if (step.background) {
      warnings.push(`Step ${n}'s background script runs when the lesson opens, with the scenario's starting state, not when the learner reaches the step.`);
      stepSetup = [stepSetup, `# step ${n}'s background script\n${step.background}`].filter(Boolean).join("\n");
    }
    const hints = detailsHints(step.text);
    const exercise: Exercise = {
      id,
      lesson: slug,
      title: `Step ${n}: ${step.title}`,
      tasks: [
        {
          id: "verify",
          title: step.title,
          check: { kind: "script", script: probePaths(step.verify), timeoutSeconds: 20 },
          failMessage: `Not done yet: ${step.title}. Follow the step above, then press Check again.`,
          hints,
        },
      ],
      solution,
      // Lesson CI needs a shortcut that must not pass; a scenario names none, so the import starts
      // with "the step skipped" and says so: the author adds the shortcuts learners really try.
      wrongAttempts: [{ name: `step ${n} skipped: its commands not run`, script: "true", fails: ["verify"] }],
      ...(stepSetup ? { setup: stepSetup } : {}),
      ...(first && scenario.intro.foreground ? { start: FOREGROUND_COMMAND } : {}),
      ...(previous ? { after: previous } : {}),
    };
    exercises.push({ id, exercise, yaml: exerciseYaml(exercise, scenario) });
    previous = id;
  });
  if (exercises.length === 0 && refusals.length === 0) warnings.push("No step has a verify.sh, so nothing is graded; the starting state is not run either.");

  const lesson = lessonMdx(scenario, options, exercises, warnings);
  return { slug, refusals, warnings, lesson, exercises };
}

/**
 * A verify script runs in the grading probe, where the sandbox's files are under $SANDBOX_ROOT
 * (its /root is also HOME and the working directory, so `~/x` and relative paths already work).
 * Absolute /root paths, by far the most common in scenarios, are pointed there; other absolute
 * paths are left alone, since most of them are paths inside containers (`docker exec web cat /etc/…`).
 */
export function probePaths(script: string): string {
  return script.replace(/(^|[\s"'=:(<>|])\/root(?=\/|[\s"';)|&]|$)/gm, "$1$SANDBOX_ROOT/root");
}

/** Where the setup saves init/foreground.sh; the first exercise's `start` types this command. */
const FOREGROUND_COMMAND = "bash /root/.scenario/foreground.sh";

/** Assets first (so background.sh can use them), then the intro's background script. */
export function startingState(scenario: Scenario): string | undefined {
  const parts: string[] = [];
  for (const asset of scenario.assets) {
    const target = assetPath(asset);
    const dir = path.posix.dirname(target);
    // base64 keeps binary assets and heredoc-breaking text intact.
    const b64 = asset.content.toString("base64").replace(/.{76}/g, "$&\n");
    parts.push(`mkdir -p ${shellQuote(dir)}\nbase64 -d > ${shellQuote(target)} <<'ASSET'\n${b64}\nASSET`);
    if (asset.chmod) parts.push(`chmod ${shellQuote(asset.chmod)} ${shellQuote(target)}`);
  }
  if (scenario.intro.background) parts.push(`# init/background.sh\n${scenario.intro.background.trim()}`);
  if (scenario.intro.foreground) {
    // Kept in the sandbox so the lesson's first Run button can start it in the learner's terminal.
    const b64 = Buffer.from(scenario.intro.foreground).toString("base64").replace(/.{76}/g, "$&\n");
    parts.push(`mkdir -p /root/.scenario\nbase64 -d > /root/.scenario/foreground.sh <<'ASSET'\n${b64}\nASSET`);
  }
  return parts.length ? parts.join("\n") : undefined;
}

/** Killercoda copies `file` into the folder `target` (a target ending in the file's name is taken as the file). */
function assetPath(asset: ScenarioAsset): string {
  const target = asset.target.replace(/^~(?=\/|$)/, "/root");
  const abs = target.startsWith("/") ? target : `/root/${target}`;
  return path.posix.join(abs, asset.file);
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./+=:-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

function exerciseYaml(exercise: Exercise, scenario: Scenario): string {
  const header = `# Imported from the Killercoda scenario "${scenario.title}" by ./shipshape import; edit freely.\n`;
  return header + yaml.dump(exercise, { lineWidth: 120, noRefs: true, quotingType: '"' });
}

// ---- Markdown to MDX ------------------------------------------------------------------------

const FENCE = /^```([^\n`]*)\n([\s\S]*?)\n?```(?:\{\{(exec|execute|copy)([^}]*)\}\})?[ \t]*$/gm;
const INLINE_ACTION = /`([^`\n]+)`\{\{(exec|execute|copy)([^}]*)\}\}/g;

/** The commands of a step's {{exec}} blocks, in order: the step's own reference solution. */
export function execBlocks(markdown: string): string[] {
  const out: string[] = [];
  const re = new RegExp(`${FENCE.source}|${INLINE_ACTION.source}`, "gm");
  for (const m of markdown.matchAll(re)) {
    if (m[3] === "exec" || m[3] === "execute") out.push((m[2] ?? "").trim());
    else if (m[6] === "exec" || m[6] === "execute") out.push((m[5] ?? "").trim());
  }
  return out.filter(Boolean);
}

function runTag(command: string, flags: string): string {
  const interrupt = /\binterrupt\b/.test(flags) ? " interrupt" : "";
  return `<Run${interrupt} cmd={${JSON.stringify(command.trim())}} />`;
}

/** Hint texts from `<details>` blocks (their summary and body), for the exercise's hints. */
export function detailsHints(markdown: string): string[] {
  const hints: string[] = [];
  for (const m of markdown.matchAll(/<details>([\s\S]*?)<\/details>/gi)) {
    const body = (m[1] ?? "")
      .replace(/<summary>([\s\S]*?)<\/summary>/i, "$1:")
      .replace(/```[^\n]*\n([\s\S]*?)\n?```(\{\{[^}]*\}\})?/g, (_x, code: string) => code.trim().split("\n").map((l) => `\`${l}\``).join(" "))
      .replace(/`([^`]+)`\{\{[^}]*\}\}/g, "`$1`")
      .replace(/<[^>]+>/g, "")
      .replace(/\s+/g, " ")
      .trim();
    if (body) hints.push(body);
  }
  return hints;
}

const KEPT_TAGS = new Set(["details", "summary", "br", "b", "i", "em", "strong", "code", "kbd", "sub", "sup", "p", "ul", "ol", "li", "a", "img", "hr", "table", "thead", "tbody", "tr", "td", "th"]);

/**
 * Markdown as MDX reads it: {{exec}} blocks become <Run> buttons, {{copy}} blocks plain code
 * blocks (every code block has a Copy button), braces and stray `<` in prose are escaped (MDX
 * would read them as code), void HTML tags are closed, comments dropped.
 */
export function markdownToMdx(markdown: string, warnings: string[], where: string): string {
  const text = markdown.replace(/\r\n/g, "\n");
  const out: string[] = [];
  let last = 0;
  for (const m of text.matchAll(FENCE)) {
    out.push(prose(text.slice(last, m.index), warnings, where));
    const [, lang = "", code = "", action, flags = ""] = m;
    if (action === "exec" || action === "execute") out.push(runTag(code, flags));
    else out.push("```" + lang.trim() + "\n" + code.replace(/\n$/, "") + "\n```");
    last = (m.index ?? 0) + m[0].length;
  }
  out.push(prose(text.slice(last), warnings, where));
  return out.join("").replace(/\n{3,}/g, "\n\n").trim();
}

function prose(text: string, warnings: string[], where: string): string {
  if (/\{\{TRAFFIC_HOST\d_(\d+)\}\}/.test(text)) warnings.push(`${where} links to a port through {{TRAFFIC_HOST1_…}}; it became http://localhost:PORT text, use <Ports> for a preview link.`);
  if (/!\[[^\]]*\]\((?!https?:)/.test(text)) warnings.push(`${where} shows a local image; copy it next to the lesson and fix its path.`);
  let t = text
    .replace(/<!--[\s\S]*?-->/g, "")
    .replace(/\{\{TRAFFIC_HOST\d_(\d+)\}\}/g, "http://localhost:$1")
    .replace(/<details>/gi, "\n<details>\n")
    .replace(/<\/summary>/gi, "</summary>\n\n")
    .replace(/<\/details>/gi, "\n\n</details>\n");
  // Inline actions first; the rest is split into code spans (kept) and prose (escaped).
  const pieces: string[] = [];
  let last = 0;
  const spans = /`[^`\n]+`(?:\{\{(exec|execute|copy)([^}]*)\}\})?/g;
  for (const m of t.matchAll(spans)) {
    pieces.push(escapeProse(t.slice(last, m.index)));
    if (m[1] === "exec" || m[1] === "execute") pieces.push(`\n\n${runTag(m[0].slice(1, m[0].indexOf("`", 1)), m[2] ?? "")}\n\n`);
    else pieces.push(m[0].replace(/\{\{[^}]*\}\}$/, ""));
    last = (m.index ?? 0) + m[0].length;
  }
  pieces.push(escapeProse(t.slice(last)));
  t = pieces.join("");
  return t;
}

function escapeProse(text: string): string {
  return text
    .replace(/[{}]/g, (c) => `\\${c}`)
    .replace(/<(\/?)([a-zA-Z][\w-]*)([^>]*)>/g, (whole, close: string, name: string, rest: string) => {
      const tag = name.toLowerCase();
      if (!KEPT_TAGS.has(tag)) return whole.replace(/</g, "&lt;");
      if ((tag === "br" || tag === "hr" || tag === "img") && !rest.trim().endsWith("/")) return `<${close}${tag}${rest.trimEnd()} />`;
      return `<${close}${tag}${rest}>`;
    })
    .replace(/<(?![a-zA-Z/])/g, "&lt;");
}

function lessonMdx(scenario: Scenario, options: ImportOptions, exercises: ImportedExercise[], warnings: string[]): string {
  const title = scenario.title.length > 80 ? `${scenario.title.slice(0, 77)}…` : scenario.title;
  const front = {
    title,
    summary: scenario.description || `Imported from the Killercoda scenario "${scenario.title}".`,
    order: options.order ?? 1000,
    duration: 5 + 5 * scenario.steps.length,
    objectives: scenario.steps.map((s) => s.title),
    terminals: ["main"],
    exercises: exercises.map((e) => e.id),
  };
  const parts: string[] = [`---\n${yaml.dump(front, { lineWidth: 120 }).trim()}\n---`];
  parts.push(`{/* Imported from a Killercoda scenario by ./shipshape import; edit freely. */}`);
  if (scenario.intro.text.trim()) parts.push(markdownToMdx(scenario.intro.text, warnings, "intro.md"));
  if (scenario.intro.foreground) {
    parts.push("When your sandbox is prepared, the scenario starts this in your terminal; run it again with:");
    parts.push(runTag(FOREGROUND_COMMAND, ""));
  }
  scenario.steps.forEach((step: ScenarioStep, i) => {
    const n = i + 1;
    parts.push(`## Step ${n}: ${escapeProse(step.title)}`);
    if (step.foreground) parts.push(runTag(step.foreground.trim(), ""));
    if (step.text.trim()) parts.push(markdownToMdx(step.text, warnings, `step ${n}`));
    const exercise = exercises.find((e) => e.id === `${options.slug}-step${n}`);
    if (exercise) parts.push(`<Exercise id="${exercise.id}" />`);
  });
  if (scenario.finish?.trim()) {
    parts.push("## Finished");
    parts.push(markdownToMdx(scenario.finish, warnings, "finish.md"));
  }
  return parts.join("\n\n") + "\n";
}

// ---- images ---------------------------------------------------------------------------------

interface Text {
  where: string;
  text: string;
}

function allText(s: Scenario): Text[] {
  const texts: Text[] = [{ where: "intro.md", text: s.intro.text }];
  if (s.intro.background) texts.push({ where: "the background script", text: s.intro.background });
  if (s.intro.foreground) texts.push({ where: "the foreground script", text: s.intro.foreground });
  s.steps.forEach((st, i) => {
    texts.push({ where: `step ${i + 1}`, text: st.text });
    if (st.verify) texts.push({ where: `step ${i + 1}'s verify.sh`, text: st.verify });
    if (st.background) texts.push({ where: `step ${i + 1}'s background script`, text: st.background });
    if (st.foreground) texts.push({ where: `step ${i + 1}'s foreground script`, text: st.foreground });
  });
  if (s.finish) texts.push({ where: "finish.md", text: s.finish });
  for (const a of s.assets) {
    if (!a.content.includes(0)) texts.push({ where: `assets/${a.file}`, text: a.content.toString("utf8") });
  }
  return texts;
}

/** `docker run` options that take a value, so the word after them is not the image. */
const VALUE_OPTIONS = new Set(
  "-p --publish -v --volume -e --env --env-file --name -w --workdir --network --net --mount --entrypoint -u --user -l --label -m --memory --memory-swap --cpus --cpu-shares -c --restart -h --hostname --add-host --device --cap-add --cap-drop --security-opt --log-driver --log-opt --ulimit --platform --pull --stop-signal --stop-timeout --tmpfs --expose --link --ip --dns --pid --ipc --cgroupns --health-cmd --health-interval --gpus --runtime --shm-size --label-file --volumes-from -a --attach --cidfile --network-alias --userns --uts --isolation --init-path"
    .split(" "),
);

export interface ImageUse {
  ref: string;
  repo: string;
  tag: string;
  where: string;
}

/** Images the scenario pulls or runs, from docker run/pull/create, FROM lines and compose image: keys. */
export function imagesUsed(texts: Text[]): { used: ImageUse[]; built: Set<string> } {
  const used: ImageUse[] = [];
  const built = new Set<string>();
  for (const { where, text } of texts) {
    const stages = new Set<string>();
    for (const m of text.matchAll(/^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?/gim)) {
      if (m[2]) stages.add(m[2].toLowerCase());
    }
    for (const line of text.split("\n")) {
      const words = line.replace(/[`'"]/g, " ").trim().split(/\s+/);
      for (let i = 0; i < words.length; i++) {
        const w = words[i];
        if (w === "docker" && (words[i + 1] === "build" || (words[i + 1] === "image" && words[i + 2] === "build"))) {
          for (let j = i + 2; j < words.length; j++) if ((words[j] === "-t" || words[j] === "--tag") && words[j + 1]) built.add(repoOf(words[j + 1]!));
        }
        if (w === "docker" && words[i + 1] === "tag" && words[i + 3]) built.add(repoOf(words[i + 3]!));
        if (w === "docker" && ["run", "pull", "create"].includes(words[i + 1] ?? "")) {
          const rest = words.slice(i + 2);
          const image = firstPositional(rest, words[i + 1] === "pull");
          if (image) used.push(use(image, where));
        }
        if (w === "docker" && words[i + 1] === "container" && ["run", "create"].includes(words[i + 2] ?? "")) {
          const image = firstPositional(words.slice(i + 3), false);
          if (image) used.push(use(image, where));
        }
      }
      const from = /^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)/i.exec(line);
      if (from && from[1] && !stages.has(from[1].toLowerCase()) && from[1] !== "scratch" && !from[1].includes("$")) used.push(use(from[1], where));
      const composeImage = /^\s+image:\s*["']?([^\s"'#]+)/.exec(line);
      if (composeImage && composeImage[1] && !composeImage[1].includes("$")) used.push(use(composeImage[1], where));
    }
  }
  return { used, built };
}

function firstPositional(words: string[], pull: boolean): string | undefined {
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w === "" || w === "\\") continue;
    if (/^[;&|]/.test(w) || w.startsWith("$") || w.startsWith("<")) return undefined;
    if (w.startsWith("-")) {
      if (!w.includes("=") && !pull && VALUE_OPTIONS.has(w)) i++;
      continue;
    }
    return /^[a-z0-9][a-z0-9._/:@-]*$/.test(w) ? w : undefined;
  }
  return undefined;
}

function repoOf(ref: string): string {
  return use(ref, "").repo;
}

function use(ref: string, where: string): ImageUse {
  let r = ref.replace(/^docker\.io\//, "").replace(/^library\//, "");
  const at = r.indexOf("@");
  if (at >= 0) r = r.slice(0, at);
  const slash = r.lastIndexOf("/");
  const colon = r.lastIndexOf(":");
  const repo = colon > slash ? r.slice(0, colon) : r;
  const tag = colon > slash ? r.slice(colon + 1) : "latest";
  return { ref, repo, tag, where };
}

export function imagesNotMirrored(texts: Text[], available: AvailableImages): ImageUse[] {
  const { used, built } = imagesUsed(texts);
  const seen = new Set<string>();
  const missing: ImageUse[] = [];
  for (const u of used) {
    if (built.has(u.repo) || u.repo.startsWith("localhost:") || u.repo.startsWith("127.0.0.1:")) continue;
    const tags = available.get(u.repo);
    if (tags && tags.has(u.tag)) continue;
    const key = `${u.repo}:${u.tag}`;
    if (seen.has(key)) continue;
    seen.add(key);
    missing.push(u);
  }
  return missing;
}
