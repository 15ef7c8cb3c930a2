import type { Check } from "../../../contracts/content/exercise-schema.ts";
import type { CheckProbe } from "./check-probe.ts";
import { type ContainerJson, cpuLimit, describeMatch, envValue, fail, formatMib, matches, MIB, normalizePath, pass, tail, type Verdict } from "./check-shared.ts";

/** Container checks: a container as asked (state, ports, mounts, limits…), none left, one removed. */

export async function containerCheck(p: CheckProbe, c: Extract<Check, { kind: "container" }>): Promise<Verdict> {
  const found = await p.candidates(c.name, c.image, { project: c.composeProject, service: c.composeService });
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
    const problems = await containerProblems(p, ct, c);
    if (problems.length === 0) return pass(`The container \`${ct.Name.replace(/^\//, "")}\` is as asked.`);
    if (!best || problems.length < best.length) best = problems;
  }
  return fail(best!.join(" "));
}

async function containerProblems(p: CheckProbe, ct: ContainerJson, c: Extract<Check, { kind: "container" }>): Promise<string[]> {
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
    const r = await p.docker(["logs", "--tail", "500", ct.Id]);
    const logs = r.stdout + r.stderr;
    if (!matches(logs, c.logs)) problems.push(`The logs of ${name} do not show ${describeMatch(c.logs)}.`);
  }
  return problems;
}

export async function noContainersCheck(p: CheckProbe, c: Extract<Check, { kind: "no-containers" }>): Promise<Verdict> {
  const found = (await p.candidates(c.name, c.image)).filter((ct) => c.state === "any" || ct.State.Running);
  if (found.length === 0) return pass("Nothing is left over.");
  const names = found.map((ct) => `\`${ct.Name.replace(/^\//, "")}\``).slice(0, 5).join(", ");
  return fail(`${found.length === 1 ? "This container is" : "These containers are"} still there: ${names}.`);
}

/**
 * The engine keeps its recent events (the last 256) in memory; asking for everything up to now
 * returns them and ends. Containers that grading itself created and removed carry the label
 * org.shipshape.grading and are not counted.
 */
export async function removedCheck(p: CheckProbe, c: Extract<Check, { kind: "removed" }>): Promise<Verdict> {
  const filters = ["--filter", "type=container", "--filter", "event=destroy"];
  if (c.image) filters.push("--filter", `image=${c.image}`);
  if (c.name) filters.push("--filter", `container=${c.name}`);
  const until = String(Math.floor(Date.now() / 1000) + 1);
  const r = await p.docker(["events", "--since", "1", "--until", until, ...filters, "--format", "{{json .Actor.Attributes}}"]);
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
