import type { Check } from "../../../contracts/content/exercise-schema.ts";
import type { CheckProbe } from "./check-probe.ts";
import { composeLabels, type ContainerJson, describeMatch, fail, matches, pass, safeJoin, type Verdict } from "./check-shared.ts";

/** Network, Compose project and volume checks. */

export async function networkCheck(p: CheckProbe, c: Extract<Check, { kind: "network" }>): Promise<Verdict> {
  const r = await p.docker(["network", "inspect", c.name]);
  if (r.exitCode !== 0) return fail(`There is no network called \`${c.name}\` yet (docker network create ${c.name}).`);
  const net = (JSON.parse(r.stdout) as Array<{ Name: string; Driver: string }>)[0];
  if (c.driver !== undefined && net?.Driver !== c.driver) return fail(`The network \`${c.name}\` uses the ${net?.Driver} driver, not ${c.driver}.`);
  // Stopped containers keep their network settings; the network's own list shows running ones only.
  const all = await p.containers();
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
export async function composeCheck(p: CheckProbe, c: Extract<Check, { kind: "compose" }>): Promise<Verdict> {
  const projects = new Map<string, ContainerJson[]>();
  for (const ct of await p.containers()) {
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

export async function volumeCheck(p: CheckProbe, c: Extract<Check, { kind: "volume" }>): Promise<Verdict> {
  const r = await p.docker(["volume", "inspect", "--format", "{{.Mountpoint}}", c.name]);
  if (r.exitCode !== 0) return fail(`There is no volume called \`${c.name}\` yet.`);
  if (!c.file) return pass(`The volume \`${c.name}\` exists.`);
  const file = safeJoin(r.stdout.trim(), c.file);
  if (!file) return fail(`The path ${c.file} is not inside the volume.`);
  const content = await p.readSandboxFile(file);
  if (content === undefined) return fail(`The volume \`${c.name}\` has no file ${c.file}.`);
  if (c.content && !matches(content, c.content)) return fail(`The file ${c.file} in the volume \`${c.name}\` does not contain ${describeMatch(c.content)}.`);
  return pass(`The volume \`${c.name}\` holds ${c.file}.`);
}
