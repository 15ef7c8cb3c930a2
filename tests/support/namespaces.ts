import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

/**
 * Every label namespace a test makes starts with a letter and this run's id (set once by the
 * global set-up, inherited by the workers), so the run's teardown can find whatever a test left
 * behind: a sandbox whose start was still under way when its server closed, for instance.
 */
export function testNamespace(kind: "t" | "b"): string {
  const run = process.env.SHIPSHAPE_TEST_RUN ?? "";
  return `${kind}${run}${Math.random().toString(36).slice(2, 10)}`.slice(0, 16);
}

const docker = (args: string[]) => spawnSync("docker", args, { encoding: "utf8", timeout: 60_000 }).stdout ?? "";

/** Removes the containers (with their volumes) and volumes of every label namespace that `match` accepts; returns how many containers there were. */
export function removeNamespaces(match: (namespace: string) => boolean): number {
  const rows = (format: string, list: string[]) =>
    docker([...list, "--filter", "label=org.shipshape.namespace", "--format", format])
      .split("\n")
      .filter(Boolean)
      .map((line) => line.split("\t") as [string, string]);
  const containers = rows('{{.ID}}\t{{.Label "org.shipshape.namespace"}}', ["ps", "-a"]).filter(([, ns]) => match(ns)).map(([id]) => id);
  if (containers.length) docker(["rm", "-f", "-v", ...containers]);
  const volumes = rows('{{.Name}}\t{{.Label "org.shipshape.namespace"}}', ["volume", "ls"]).filter(([, ns]) => match(ns)).map(([name]) => name);
  if (volumes.length) docker(["volume", "rm", "-f", ...volumes]);
  return containers.length + removeLxdNamespaces(match);
}

/** The same for the isolated tier's LXD instances (user.shipshape.namespace), where LXD runs. */
function removeLxdNamespaces(match: (namespace: string) => boolean): number {
  const socket = process.env.SHIPSHAPE_LXD_SOCKET ?? "/var/lib/lxd/unix.socket";
  if (!existsSync(socket)) return 0;
  const env = { ...process.env, LXD_SOCKET: socket };
  const r = spawnSync("lxc", ["list", "--format", "json"], { encoding: "utf8", timeout: 60_000, env });
  if (r.status !== 0) return 0;
  const names = (JSON.parse(r.stdout) as { name: string; config: Record<string, string> }[])
    .filter((i) => i.config["user.shipshape.namespace"] !== undefined && match(i.config["user.shipshape.namespace"]))
    .map((i) => i.name);
  if (names.length) spawnSync("lxc", ["delete", "-f", ...names], { timeout: 120_000, env });
  return names.length;
}

/** Everything of this run's namespaces (see testNamespace). */
export function removeRunLeftovers(run: string): number {
  if (run === "") return 0;
  return removeNamespaces((ns) => ns.startsWith(`t${run}`) || ns.startsWith(`b${run}`));
}
