import type { Check } from "../../../contracts/content/exercise-schema.ts";
import type { CheckProbe } from "./check-probe.ts";
import { describeMatch, envValue, fail, matches, normalizePath, pass, quote, tail, type Verdict } from "./check-shared.ts";

/** Image and run checks: what an image is (config, files) and what running it prints. */

export async function imageCheck(p: CheckProbe, c: Extract<Check, { kind: "image" }>): Promise<Verdict> {
  const img = await p.inspectImage(c.image);
  if (!img) return fail(`There is no image called \`${c.image}\` yet.`);
  const cfg = img.Config ?? {};
  if (c.hasEntrypoint && !(cfg.Entrypoint && cfg.Entrypoint.length > 0)) return fail(`The image \`${c.image}\` has no ENTRYPOINT.`);
  if (c.hasEntrypoint === false && cfg.Entrypoint && cfg.Entrypoint.length > 0) return fail(`The image \`${c.image}\` should not set an ENTRYPOINT.`);
  if (c.hasCmd && !(cfg.Cmd && cfg.Cmd.length > 0)) return fail(`The image \`${c.image}\` has no CMD.`);
  for (const [key, value] of Object.entries(c.env ?? {})) {
    const actual = envValue(cfg.Env, key);
    if (actual === undefined) return fail(`The image \`${c.image}\` does not set the environment variable ${key}.`);
    const wanted = typeof value === "string" ? value : describeMatch(value);
    if (typeof value === "string" ? actual !== value : !matches(actual, value)) {
      return fail(`The image \`${c.image}\` sets ${key}=${actual}, but it should be ${key}=${wanted}.`);
    }
  }
  if (c.sameAs) {
    const other = await p.inspectImage(c.sameAs);
    if (!other) return fail(`There is no image called \`${c.sameAs}\` yet.`);
    if (other.Id !== img.Id) {
      return fail(`\`${c.image}\` is a different image from \`${c.sameAs}\` (another IMAGE ID); give \`${c.sameAs}\` the new name with docker tag.`);
    }
  }
  if (c.nonRoot && ["", "root", "0", "0:0", "root:root"].includes((cfg.User ?? "").trim())) {
    return fail(`The image \`${c.image}\` runs as root; add a USER line with an ordinary user.`);
  }
  if (c.hasHealthcheck) {
    const test = cfg.Healthcheck?.Test ?? [];
    if (test.length === 0 || test[0] === "NONE") return fail(`The image \`${c.image}\` has no HEALTHCHECK.`);
  }
  for (const p of c.exposes ?? []) {
    const exposed = Object.keys(cfg.ExposedPorts ?? {}).map((k) => Number.parseInt(k, 10));
    if (!exposed.includes(p)) return fail(`The image \`${c.image}\` does not EXPOSE port ${p}.`);
  }
  if (c.workdir !== undefined && normalizePath(cfg.WorkingDir ?? "") !== normalizePath(c.workdir)) {
    return fail(`The image \`${c.image}\` should have WORKDIR ${c.workdir}${cfg.WorkingDir ? `, not ${cfg.WorkingDir}` : ""}.`);
  }
  if (c.historyIncludes?.length) {
    const h = await p.docker(["image", "history", "--no-trunc", "--format", "{{.CreatedBy}}", c.image]);
    for (const text of c.historyIncludes) {
      if (!h.stdout.includes(text)) return fail(`The history of \`${c.image}\` has no step with \`${text}\`.`);
    }
  }
  if (c.baseImage) {
    const base = await p.inspectImage(c.baseImage);
    if (!base) return fail(`The base image \`${c.baseImage}\` is not in your engine; pull it first.`);
    const ours = img.RootFS?.Layers ?? [];
    const theirs = base.RootFS?.Layers ?? [];
    if (theirs.length === 0 || !theirs.every((l, i) => ours[i] === l)) {
      return fail(`The image \`${c.image}\` is not built FROM \`${c.baseImage}\`.`);
    }
  }
  if (c.maxSizeMb !== undefined && img.Size > c.maxSizeMb * 1e6) {
    return fail(`The image \`${c.image}\` is ${Math.round(img.Size / 1e6)} MB; make it at most ${c.maxSizeMb} MB.`);
  }
  if (c.hasFiles?.length || c.lacksFiles?.length) {
    const problem = await imageFiles(p, img.Id, c.image, c.hasFiles ?? [], c.lacksFiles ?? []);
    if (problem) return fail(problem);
  }
  return pass(`The image \`${c.image}\` is there and set up as asked.`);
}

/**
 * Looks for paths in an image without running it: a container is created (never started, so
 * images without a shell or a command work too) and the engine is asked about each path with the
 * HEAD form of its archive API, which answers 200 or 404 without sending any content.
 */
async function imageFiles(p: CheckProbe, imageId: string, ref: string, present: string[], absent: string[]): Promise<string | undefined> {
  const created = await p.docker([
    "create", "--pull", "never", "--network", "none", "--label", "org.shipshape.grading=files",
    "--entrypoint", "/shipshape-grading-never-started", imageId,
  ]);
  const id = created.stdout.trim().split("\n").pop() ?? "";
  if (created.exitCode !== 0 || !/^[0-9a-f]{64}$/.test(id)) return `The files of \`${ref}\` could not be looked at; try again.`;
  try {
    const exists = async (path: string): Promise<boolean> => {
      const url = `http://engine/containers/${id}/archive?path=${encodeURIComponent(path)}`;
      const r = await p.probe.exec(
        // The same engine `docker` talks to: the socket DOCKER_HOST names in the probe.
        ["sh", "-c", 'exec curl -sS -o /dev/null -I -w "%{http_code}" -m 10 --unix-socket "${DOCKER_HOST#unix://}" "$0"', url],
        { timeoutMs: 15_000 },
      );
      if (r.stdout.trim() === "200") return true;
      if (r.stdout.trim() === "404") return false;
      throw new Error(`archive stat of ${path}: ${r.stdout} ${r.stderr}`);
    };
    for (const path of present) {
      if (!(await exists(path))) return `The image \`${ref}\` has no ${path}.`;
    }
    for (const path of absent) {
      if (await exists(path)) return `The image \`${ref}\` still contains ${path}; keep it out of the image.`;
    }
    return undefined;
  } finally {
    await p.docker(["rm", "-f", id]);
  }
}

export async function runCheck(p: CheckProbe, c: Extract<Check, { kind: "run" }>): Promise<Verdict> {
  if (!(await p.inspectImage(c.image))) return fail(`There is no image called \`${c.image}\` yet.`);
  const env = Object.entries(c.env ?? {}).flatMap(([k, v]) => ["-e", `${k}=${v}`]);
  const shown = ["docker run", ...env.filter((_, i) => i % 2 === 1).map((e) => `-e ${e}`), c.image, ...c.args].join(" ");
  const r = await p.docker(
    ["run", "--rm", "--network", "none", "--pull", "never", "--label", "org.shipshape.grading=run", ...env, c.image, ...c.args],
    30_000,
  );
  if (r.timedOut) return fail(`\`${shown}\` did not finish within 30 seconds.`);
  if (c.exitCode !== undefined && r.exitCode !== c.exitCode) {
    return fail(`\`${shown}\` exited with code ${r.exitCode}, expected ${c.exitCode}.${tail(r.stderr)}`);
  }
  if (c.stdout && !matches(r.stdout, c.stdout)) {
    return fail(`\`${shown}\` printed ${quote(r.stdout)}, but it should print ${describeMatch(c.stdout)}.${tail(r.stderr)}`);
  }
  return pass(`\`${shown}\` works.`);
}
