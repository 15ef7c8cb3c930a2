import type { ExecResult, SandboxProbe } from "../runtime/types.ts";
import type { Check } from "../../../contracts/content/exercise-schema.ts";

/** One task's verdict: pass or fail, with a sentence for the learner saying what is missing. */
export interface Verdict {
  passed: boolean;
  message: string;
}

type Match = { includes?: string | undefined; matches?: string | undefined; equals?: string | undefined; ignoreCase?: boolean | undefined };

const pass = (message: string): Verdict => ({ passed: true, message });
const fail = (message: string): Verdict => ({ passed: false, message });

/** Files and logs are read up to this size; enough for any check, bounded for the server. */
const READ_LIMIT = 1024 * 1024;
/** A verify script's output is only read for the exit code; 64 KiB keeps a chatty script cheap. */
const SCRIPT_OUTPUT_LIMIT = 64 * 1024;

/**
 * Judges checks against the sandbox's real state, through a probe whose tools the learner cannot
 * replace. Every check accepts any way of reaching the goal: it looks at results (image config,
 * container state, answers on ports), not at the commands that were typed.
 */
export class CheckRunner {
  private readonly probe: SandboxProbe;
  private containersCache: Promise<ContainerJson[]> | undefined;

  constructor(probe: SandboxProbe) {
    this.probe = probe;
  }

  async run(check: Check): Promise<Verdict> {
    switch (check.kind) {
      case "image":
        return this.image(check);
      case "run":
        return this.runImage(check);
      case "container":
        return this.container(check);
      case "no-containers":
        return this.noContainers(check);
      case "removed":
        return this.removed(check);
      case "volume":
        return this.volume(check);
      case "file":
        return this.file(check);
      case "http":
        return this.http(check);
      case "network":
        return this.network(check);
      case "compose":
        return this.compose(check);
      case "script":
        return this.script(check);
    }
  }

  /**
   * An author's script (a Killercoda verify.sh), run in the probe with the probe's own tools, so
   * a learner who replaces docker or grep in their sandbox cannot make it pass. The sandbox's
   * files are reached through $SANDBOX_ROOT, its engine through DOCKER_HOST and its ports on
   * localhost (the probe shares its network); the runtime provides all three (authorScript). `timeout -s KILL` bounds the whole process
   * group's time even when the script ignores signals; the output is bounded and never shown, since
   * it may echo learner-controlled text or the answer. `bash -e`: a verify.sh that ends in
   * `echo done` must not pass because its last line did (no pipefail: `docker ps | grep -q x`
   * would fail on docker's SIGPIPE).
   */
  private async script(c: Extract<Check, { kind: "script" }>): Promise<Verdict> {
    const r = await this.probe.authorScript(
      ["bash", "-c", 'cd "$HOME" 2>/dev/null || cd /; exec timeout -s KILL "$1" bash -e -c "$2" verify', "script-check", String(c.timeoutSeconds), c.script],
      {
        timeoutMs: c.timeoutSeconds * 1000 + 5_000,
        maxOutputBytes: SCRIPT_OUTPUT_LIMIT,
        env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
      },
    );
    if (r.timedOut || r.exitCode === 137) return fail(`The check did not finish within ${c.timeoutSeconds} s, so it does not pass yet.`);
    if (r.exitCode === 0) return pass("Done.");
    return fail("Not done yet.");
  }

  private docker(args: string[], timeoutMs = 15_000): Promise<ExecResult> {
    return this.probe.exec(["docker", ...args], { timeoutMs, maxOutputBytes: READ_LIMIT });
  }

  private async inspectImage(ref: string): Promise<ImageJson | undefined> {
    const r = await this.docker(["image", "inspect", ref]);
    if (r.exitCode !== 0) return undefined;
    return (JSON.parse(r.stdout) as ImageJson[])[0];
  }

  private async image(c: Extract<Check, { kind: "image" }>): Promise<Verdict> {
    const img = await this.inspectImage(c.image);
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
      const other = await this.inspectImage(c.sameAs);
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
      const h = await this.docker(["image", "history", "--no-trunc", "--format", "{{.CreatedBy}}", c.image]);
      for (const text of c.historyIncludes) {
        if (!h.stdout.includes(text)) return fail(`The history of \`${c.image}\` has no step with \`${text}\`.`);
      }
    }
    if (c.baseImage) {
      const base = await this.inspectImage(c.baseImage);
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
      const problem = await this.imageFiles(img.Id, c.image, c.hasFiles ?? [], c.lacksFiles ?? []);
      if (problem) return fail(problem);
    }
    return pass(`The image \`${c.image}\` is there and set up as asked.`);
  }

  /**
   * Looks for paths in an image without running it: a container is created (never started, so
   * images without a shell or a command work too) and the engine is asked about each path with the
   * HEAD form of its archive API, which answers 200 or 404 without sending any content.
   */
  private async imageFiles(imageId: string, ref: string, present: string[], absent: string[]): Promise<string | undefined> {
    const created = await this.docker([
      "create", "--pull", "never", "--network", "none", "--label", "org.shipshape.grading=files",
      "--entrypoint", "/shipshape-grading-never-started", imageId,
    ]);
    const id = created.stdout.trim().split("\n").pop() ?? "";
    if (created.exitCode !== 0 || !/^[0-9a-f]{64}$/.test(id)) return `The files of \`${ref}\` could not be looked at; try again.`;
    try {
      const exists = async (path: string): Promise<boolean> => {
        const url = `http://engine/containers/${id}/archive?path=${encodeURIComponent(path)}`;
        // The same engine `docker` talks to: the socket DOCKER_HOST names in the probe.
        const r = await this.probe.exec(
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
      await this.docker(["rm", "-f", id]);
    }
  }

  private async runImage(c: Extract<Check, { kind: "run" }>): Promise<Verdict> {
    if (!(await this.inspectImage(c.image))) return fail(`There is no image called \`${c.image}\` yet.`);
    const env = Object.entries(c.env ?? {}).flatMap(([k, v]) => ["-e", `${k}=${v}`]);
    const shown = ["docker run", ...env.filter((_, i) => i % 2 === 1).map((e) => `-e ${e}`), c.image, ...c.args].join(" ");
    const r = await this.docker(
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

  /**
   * Every container of the engine. An engine that does not answer is not an empty one (that read
   * "nothing is left over" as a pass): failures throw, and the task cannot be judged.
   */
  private containers(): Promise<ContainerJson[]> {
    this.containersCache ??= (async () => {
      const ids = await this.docker(["ps", "-aq", "--no-trunc"]);
      if (ids.exitCode !== 0) throw new Error(`docker ps: exit ${ids.exitCode} ${ids.stderr.trim()}`);
      const list = ids.stdout.split("\n").filter((l) => /^[0-9a-f]{64}$/.test(l));
      if (list.length === 0) return [];
      const r = await this.docker(["inspect", ...list.slice(0, 200)]);
      // A container removed between the two calls (--rm) fails the inspect but not the others' JSON.
      try {
        return JSON.parse(r.stdout) as ContainerJson[];
      } catch {
        throw new Error(`docker inspect: exit ${r.exitCode} ${r.stderr.trim()}`);
      }
    })();
    return this.containersCache;
  }

  private async candidates(
    name: string | undefined,
    image: string | undefined,
    compose: { project?: string | undefined; service?: string | undefined } = {},
  ): Promise<ContainerJson[]> {
    const all = await this.containers();
    const imageId = image ? (await this.inspectImage(image))?.Id : undefined;
    return all.filter(
      (c) =>
        (name === undefined || c.Name.replace(/^\//, "") === name) &&
        (image === undefined || c.Image === imageId || sameImage(c.Config.Image, image)) &&
        (compose.project === undefined || composeLabels(c).project === compose.project) &&
        (compose.service === undefined || composeLabels(c).service === compose.service),
    );
  }

  private async container(c: Extract<Check, { kind: "container" }>): Promise<Verdict> {
    const found = await this.candidates(c.name, c.image, { project: c.composeProject, service: c.composeService });
    const what = c.name
      ? `named \`${c.name}\``
      : c.composeService
        ? `of the Compose service \`${c.composeService}\`${c.composeProject ? ` in the project \`${c.composeProject}\`` : ""}${c.image ? ` from the image \`${c.image}\`` : ""}`
        : c.image
          ? `from the image \`${c.image}\``
          : c.composeProject
            ? `in the Compose project \`${c.composeProject}\``
            : "at all";
    if (found.length === 0) return fail(`There is no container ${what} yet.`);
    let best: string[] | undefined;
    for (const ct of found) {
      const problems = await this.containerProblems(ct, c);
      if (problems.length === 0) return pass(`The container \`${ct.Name.replace(/^\//, "")}\` is as asked.`);
      if (!best || problems.length < best.length) best = problems;
    }
    return fail(best!.join(" "));
  }

  private async containerProblems(ct: ContainerJson, c: Extract<Check, { kind: "container" }>): Promise<string[]> {
    const name = `\`${ct.Name.replace(/^\//, "")}\``;
    const problems: string[] = [];
    if (c.state === "running" && !ct.State.Running) problems.push(`The container ${name} is not running (it is ${ct.State.Status}).`);
    if (c.state === "exited" && ct.State.Running) problems.push(`The container ${name} is still running.`);
    if (c.exitCode !== undefined && !ct.State.Running && ct.State.ExitCode !== c.exitCode) {
      problems.push(`The container ${name} exited with code ${ct.State.ExitCode}, not ${c.exitCode}.`);
    }
    for (const p of c.publishes ?? []) {
      const bindings = ct.HostConfig.PortBindings?.[`${p.containerPort}/tcp`] ?? [];
      const hostPorts = bindings.map((b) => Number.parseInt(b.HostPort || "0", 10));
      if (bindings.length === 0) problems.push(`The container ${name} does not publish its port ${p.containerPort} (use -p).`);
      else if (p.hostPort !== undefined && !hostPorts.includes(p.hostPort)) {
        problems.push(`The container ${name} publishes port ${p.containerPort} on ${hostPorts.join(", ")}, not on ${p.hostPort}.`);
      }
    }
    for (const m of c.mounts ?? []) {
      const mount = (ct.Mounts ?? []).find((x) => normalizePath(x.Destination) === normalizePath(m.destination));
      if (!mount) problems.push(`The container ${name} has nothing mounted at ${m.destination}.`);
      else if (m.type !== "any" && mount.Type !== m.type) problems.push(`At ${m.destination}, the container ${name} has a ${mount.Type} mount, not a ${m.type}.`);
      else if (m.source !== undefined && mount.Name !== m.source && normalizePath(mount.Source) !== normalizePath(m.source)) {
        problems.push(`At ${m.destination}, the container ${name} mounts ${mount.Name ?? mount.Source}, not ${m.source}.`);
      } else if (m.readOnly === true && mount.RW !== false) {
        problems.push(`At ${m.destination}, the container ${name} has a writable mount; mount it read-only (add :ro).`);
      } else if (m.readOnly === false && mount.RW === false) {
        problems.push(`At ${m.destination}, the container ${name} has a read-only mount, but it must be writable.`);
      }
    }
    for (const [key, value] of Object.entries(c.env ?? {})) {
      const actual = envValue(ct.Config.Env, key);
      const ok = typeof value === "string" ? actual === value : actual !== undefined && matches(actual, value);
      const wanted = typeof value === "string" ? value : describeMatch(value);
      if (!ok) problems.push(`The container ${name} should have ${key}=${wanted}${actual === undefined ? "" : `, not ${key}=${actual}`}.`);
    }
    if (c.autoRemove && !ct.HostConfig.AutoRemove) problems.push(`The container ${name} was not started with --rm.`);
    if (c.restartPolicy !== undefined) {
      const policy = ct.HostConfig.RestartPolicy?.Name || "no";
      if (policy !== c.restartPolicy) problems.push(`The container ${name} has the restart policy \`${policy}\`, not \`${c.restartPolicy}\` (--restart ${c.restartPolicy}).`);
    }
    if (c.health !== undefined) {
      const health = ct.State.Health?.Status;
      if (health === undefined) problems.push(`The container ${name} has no health check, so it reports no health.`);
      else if (health !== c.health) {
        problems.push(
          health === "starting"
            ? `The health check of ${name} has not answered yet (starting); wait for its first interval and check again.`
            : `The container ${name} is ${health}, not ${c.health}; docker inspect shows the last checks' output under .State.Health.`,
        );
      }
    }
    for (const net of c.networks ?? []) {
      const on = Object.keys(ct.NetworkSettings?.Networks ?? {});
      if (!on.includes(net)) problems.push(`The container ${name} is not on the network \`${net}\` (it is on ${on.length ? on.map((n) => `\`${n}\``).join(", ") : "none"}).`);
    }
    if (c.memoryMb !== undefined) {
      const limit = ct.HostConfig.Memory ?? 0;
      if (limit === 0) problems.push(`The container ${name} has no memory limit (start it with --memory ${c.memoryMb}m).`);
      else if (Math.abs(limit - c.memoryMb * MIB) > MIB / 2) {
        problems.push(`The container ${name} may use ${formatMib(limit)} of memory, not ${c.memoryMb} MiB (--memory ${c.memoryMb}m).`);
      }
    }
    if (c.cpus !== undefined) {
      const cpus = cpuLimit(ct.HostConfig);
      if (cpus === undefined) problems.push(`The container ${name} has no CPU limit (start it with --cpus ${c.cpus}).`);
      else if (Math.abs(cpus - c.cpus) > 0.005) problems.push(`The container ${name} may use ${cpus} CPUs, not ${c.cpus} (--cpus ${c.cpus}).`);
    }
    if (c.oomKilled === true && !ct.State.OOMKilled) {
      problems.push(
        ct.State.Running
          ? `The container ${name} is still running; it has not run out of memory.`
          : `The container ${name} was not killed for lack of memory (it exited with code ${ct.State.ExitCode}, and docker inspect shows OOMKilled false).`,
      );
    }
    if (c.oomKilled === false && ct.State.OOMKilled) problems.push(`The container ${name} was killed because it ran out of memory.`);
    if (c.imagePinned && !/@sha256:[0-9a-f]{64}$/.test(ct.Config.Image)) {
      problems.push(`The container ${name} was started from \`${ct.Config.Image}\`, which is not pinned to a digest (name@sha256:…).`);
    }
    if (c.logs) {
      const r = await this.docker(["logs", "--tail", "500", ct.Id]);
      const logs = r.stdout + r.stderr;
      if (!matches(logs, c.logs)) problems.push(`The logs of ${name} do not show ${describeMatch(c.logs)}.`);
    }
    return problems;
  }

  private async noContainers(c: Extract<Check, { kind: "no-containers" }>): Promise<Verdict> {
    const found = (await this.candidates(c.name, c.image)).filter((ct) => c.state === "any" || ct.State.Running);
    if (found.length === 0) return pass("Nothing is left over.");
    const names = found.map((ct) => `\`${ct.Name.replace(/^\//, "")}\``).slice(0, 5).join(", ");
    return fail(`${found.length === 1 ? "This container is" : "These containers are"} still there: ${names}.`);
  }

  /**
   * The engine keeps its recent events (the last 256) in memory; asking for everything up to now
   * returns them and ends. Containers that grading itself created and removed carry the label
   * org.shipshape.grading and are not counted.
   */
  private async removed(c: Extract<Check, { kind: "removed" }>): Promise<Verdict> {
    const filters = ["--filter", "type=container", "--filter", "event=destroy"];
    if (c.image) filters.push("--filter", `image=${c.image}`);
    if (c.name) filters.push("--filter", `container=${c.name}`);
    const until = String(Math.floor(Date.now() / 1000) + 1);
    const r = await this.docker(["events", "--since", "1", "--until", until, ...filters, "--format", "{{json .Actor.Attributes}}"]);
    if (r.exitCode !== 0) throw new Error(`docker events: ${r.stderr}`);
    const removed = r.stdout
      .split("\n")
      .filter((l) => l.trim().startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, string>)
      .filter((a) => a["org.shipshape.grading"] === undefined);
    const what = `${c.image ? ` from \`${c.image}\`` : ""}${c.name ? ` named \`${c.name}\`` : ""}`;
    if (removed.length >= c.atLeast) return pass(`${removed.length} container${removed.length === 1 ? "" : "s"}${what} removed.`);
    return fail(
      removed.length === 0
        ? `No container${what} has been removed yet, so there was nothing to tidy. Make some first, then remove them.`
        : `Only ${removed.length} container${removed.length === 1 ? "" : "s"}${what} removed; at least ${c.atLeast} should be.`,
    );
  }

  private async network(c: Extract<Check, { kind: "network" }>): Promise<Verdict> {
    const r = await this.docker(["network", "inspect", c.name]);
    if (r.exitCode !== 0) return fail(`There is no network called \`${c.name}\` yet (docker network create ${c.name}).`);
    const net = (JSON.parse(r.stdout) as Array<{ Name: string; Driver: string }>)[0];
    if (c.driver !== undefined && net?.Driver !== c.driver) return fail(`The network \`${c.name}\` uses the ${net?.Driver} driver, not ${c.driver}.`);
    // Stopped containers keep their network settings; the network's own list shows running ones only.
    const all = await this.containers();
    const byName = (n: string) => all.find((ct) => ct.Name.replace(/^\//, "") === n);
    const attached = (ct: ContainerJson) => Object.keys(ct.NetworkSettings?.Networks ?? {}).includes(net?.Name ?? c.name);
    for (const n of c.containers ?? []) {
      const ct = byName(n);
      if (!ct) return fail(`There is no container named \`${n}\` yet.`);
      if (!attached(ct)) return fail(`The container \`${n}\` is not on the network \`${c.name}\`.`);
    }
    for (const n of c.notContainers ?? []) {
      const ct = byName(n);
      if (ct && attached(ct)) return fail(`The container \`${n}\` should not be on the network \`${c.name}\`, but it is.`);
    }
    return pass(`The network \`${c.name}\` is there${c.containers?.length ? ` with ${c.containers.map((n) => `\`${n}\``).join(", ")} on it` : ""}.`);
  }

  /** A Compose project is the set of containers carrying its label; every listed service must be there. */
  private async compose(c: Extract<Check, { kind: "compose" }>): Promise<Verdict> {
    const projects = new Map<string, ContainerJson[]>();
    for (const ct of await this.containers()) {
      const { project } = composeLabels(ct);
      if (project === undefined || (c.project !== undefined && project !== c.project)) continue;
      projects.set(project, [...(projects.get(project) ?? []), ct]);
    }
    if (projects.size === 0) {
      return fail(
        c.project
          ? `There are no containers of the Compose project \`${c.project}\` yet (run docker compose up -d in its folder).`
          : "No Compose project is up yet (run docker compose up -d in the folder of compose.yaml).",
      );
    }
    let best: string | undefined;
    let bestCount = Infinity;
    for (const [project, containers] of projects) {
      const problems: string[] = [];
      for (const service of c.services) {
        const mine = containers.filter((ct) => composeLabels(ct).service === service);
        if (mine.length === 0) {
          const have = [...new Set(containers.map((ct) => composeLabels(ct).service ?? "?"))].sort();
          problems.push(`The Compose project \`${project}\` has no service \`${service}\` (it has ${have.map((s) => `\`${s}\``).join(", ")}).`);
        } else if (c.state === "running" && !mine.some((ct) => ct.State.Running)) {
          const ct = mine[0]!;
          problems.push(
            `The service \`${service}\` of the project \`${project}\` is not running (it is ${ct.State.Status}${ct.State.Status === "exited" ? ` with code ${ct.State.ExitCode}` : ""}); docker compose logs ${service} shows why.`,
          );
        }
      }
      if (problems.length === 0) return pass(`The Compose project \`${project}\` is up with ${c.services.map((s) => `\`${s}\``).join(", ")}.`);
      if (problems.length < bestCount) {
        best = problems.join(" ");
        bestCount = problems.length;
      }
    }
    return fail(best!);
  }

  private async volume(c: Extract<Check, { kind: "volume" }>): Promise<Verdict> {
    const r = await this.docker(["volume", "inspect", "--format", "{{.Mountpoint}}", c.name]);
    if (r.exitCode !== 0) return fail(`There is no volume called \`${c.name}\` yet.`);
    if (!c.file) return pass(`The volume \`${c.name}\` exists.`);
    const file = safeJoin(r.stdout.trim(), c.file);
    if (!file) return fail(`The path ${c.file} is not inside the volume.`);
    const content = await this.readSandboxFile(file);
    if (content === undefined) return fail(`The volume \`${c.name}\` has no file ${c.file}.`);
    if (c.content && !matches(content, c.content)) return fail(`The file ${c.file} in the volume \`${c.name}\` does not contain ${describeMatch(c.content)}.`);
    return pass(`The volume \`${c.name}\` holds ${c.file}.`);
  }

  private async file(c: Extract<Check, { kind: "file" }>): Promise<Verdict> {
    const content = await this.readSandboxFile(c.path);
    if (content === undefined) return fail(`There is no file ${c.path} yet.`);
    if (c.content && !matches(content, c.content)) return fail(`The file ${c.path} does not contain ${describeMatch(c.content)}.`);
    return pass(`The file ${c.path} is there.`);
  }

  /** The sandbox's file as its root sees it, read by the probe's own trusted reader. */
  private readSandboxFile(path: string): Promise<string | undefined> {
    return this.probe.readFile(path, READ_LIMIT);
  }

  private async http(c: Extract<Check, { kind: "http" }>): Promise<Verdict> {
    const url = `http://127.0.0.1:${c.port}${c.path}`;
    const r = await this.probe.exec(["curl", "-sS", "-m", "5", "--max-filesize", String(READ_LIMIT), "-w", "\n%{http_code}", url], {
      timeoutMs: 10_000,
      maxOutputBytes: READ_LIMIT + 16,
    });
    if (r.exitCode !== 0) return fail(`Nothing answers on port ${c.port} in your sandbox yet (publish it with -p ${c.port}:…).`);
    const nl = r.stdout.lastIndexOf("\n");
    const status = Number.parseInt(r.stdout.slice(nl + 1), 10);
    const body = r.stdout.slice(0, Math.max(0, nl));
    if (status !== c.status) return fail(`Port ${c.port} answered ${c.path} with status ${status}, expected ${c.status}.`);
    if (c.body && !matches(body, c.body)) return fail(`Port ${c.port} answers, but the page does not show ${describeMatch(c.body)}.`);
    return pass(`Port ${c.port} answers as expected.`);
  }
}

export function matches(text: string, m: Match): boolean {
  const fold = (t: string) => (m.ignoreCase ? t.toLowerCase() : t);
  if (m.equals !== undefined && fold(text.trim()) !== fold(m.equals.trim())) return false;
  if (m.includes !== undefined && !fold(text).includes(fold(m.includes))) return false;
  if (m.matches !== undefined && !new RegExp(m.matches, m.ignoreCase ? "mi" : "m").test(text)) return false;
  return true;
}

function describeMatch(m: Match): string {
  if (m.equals !== undefined) return quote(m.equals);
  if (m.includes !== undefined) return quote(m.includes);
  return `text matching /${m.matches}/`;
}

function quote(text: string): string {
  const t = text.trim();
  if (t === "") return "nothing";
  return `"${t.length > 80 ? t.slice(0, 77) + "…" : t}"`;
}

function tail(stderr: string): string {
  const t = stderr.trim().split("\n").slice(-2).join(" ").slice(0, 200);
  return t ? ` It said: ${t}` : "";
}

const MIB = 1024 * 1024;

function formatMib(bytes: number): string {
  const mib = bytes / MIB;
  return `${Number.isInteger(mib) ? mib : mib.toFixed(1)} MiB`;
}

/** --cpus sets NanoCpus; --cpu-quota with --cpu-period (default 100 ms) is the same limit said another way. */
export function cpuLimit(h: { NanoCpus?: number; CpuQuota?: number; CpuPeriod?: number }): number | undefined {
  if (h.NanoCpus) return Math.round(h.NanoCpus / 1e7) / 100;
  if (h.CpuQuota && h.CpuQuota > 0) return Math.round((h.CpuQuota / (h.CpuPeriod || 100_000)) * 100) / 100;
  return undefined;
}

/** Compose v1 and v2 label their containers the same way. */
function composeLabels(ct: ContainerJson): { project?: string | undefined; service?: string | undefined } {
  const labels = ct.Config.Labels ?? {};
  return { project: labels["com.docker.compose.project"], service: labels["com.docker.compose.service"] };
}

function envValue(env: string[] | null | undefined, key: string): string | undefined {
  const hit = (env ?? []).find((e) => e.startsWith(`${key}=`));
  return hit === undefined ? undefined : hit.slice(key.length + 1);
}

function normalizePath(p: string): string {
  return p.replace(/\/+$/, "") || "/";
}

/** `nginx`, `nginx:latest` and `docker.io/library/nginx:latest` are one image; no tag matches any tag. */
export function sameImage(actual: string, wanted: string): boolean {
  const norm = (ref: string) => {
    let r = ref.replace(/^docker\.io\//, "").replace(/^library\//, "");
    const at = r.indexOf("@");
    if (at >= 0) r = r.slice(0, at);
    const slash = r.lastIndexOf("/");
    const colon = r.lastIndexOf(":");
    return colon > slash ? { repo: r.slice(0, colon), tag: r.slice(colon + 1) } : { repo: r, tag: undefined };
  };
  const a = norm(actual);
  const w = norm(wanted);
  return a.repo === w.repo && (w.tag === undefined || (a.tag ?? "latest") === w.tag);
}

/** Joins a relative path under a root, refusing anything that climbs out. */
function safeJoin(root: string, rel: string): string | undefined {
  const parts: string[] = [];
  for (const seg of rel.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") return undefined;
    parts.push(seg);
  }
  return `${root.replace(/\/+$/, "")}/${parts.join("/")}`;
}

interface ImageJson {
  Id: string;
  Size: number;
  Config?: {
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    Env?: string[] | null;
    ExposedPorts?: Record<string, unknown> | null;
    WorkingDir?: string;
    User?: string;
    Healthcheck?: { Test?: string[] | null } | null;
  };
  RootFS?: { Layers?: string[] };
}

interface ContainerJson {
  Id: string;
  Name: string;
  Image: string;
  Config: { Image: string; Env?: string[] | null; Labels?: Record<string, string> | null };
  State: { Status: string; Running: boolean; ExitCode: number; OOMKilled?: boolean; Health?: { Status: string } };
  HostConfig: {
    PortBindings?: Record<string, Array<{ HostIp: string; HostPort: string }>> | null;
    AutoRemove?: boolean;
    RestartPolicy?: { Name?: string };
    Memory?: number;
    NanoCpus?: number;
    CpuQuota?: number;
    CpuPeriod?: number;
  };
  NetworkSettings?: { Networks?: Record<string, unknown> | null };
  Mounts?: Array<{ Type: string; Name?: string; Source: string; Destination: string; RW?: boolean }>;
}
