import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";

const run = promisify(execFile);
export const NAMESPACE_LABEL = "org.shipshape.namespace=bench";

/** `docker …` with a bounded run time; stdout as text. */
export async function docker(args: string[], timeoutMs = 120_000): Promise<string> {
  const { stdout } = await run("docker", args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

/** Removes every container and volume labelled with the bench's namespace (sandboxes, probes). */
export async function removeBenchContainers(): Promise<number> {
  const ids = (await docker(["ps", "-aq", "--filter", `label=${NAMESPACE_LABEL}`]).catch(() => "")).split("\n").filter(Boolean);
  for (let i = 0; i < ids.length; i += 50) {
    await docker(["rm", "-f", "-v", ...ids.slice(i, i + 50)], 300_000).catch(() => "");
  }
  const volumes = (await docker(["volume", "ls", "-q", "--filter", `label=${NAMESPACE_LABEL}`]).catch(() => "")).split("\n").filter(Boolean);
  for (let i = 0; i < volumes.length; i += 50) {
    await docker(["volume", "rm", "-f", ...volumes.slice(i, i + 50)], 300_000).catch(() => "");
  }
  return ids.length;
}

/** MemAvailable from /proc/meminfo, in MiB. */
export function memAvailableMb(): number {
  const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync("/proc/meminfo", "utf8"));
  return m ? Number(m[1]) / 1024 : 0;
}

/**
 * Memory a container's cgroup charges (what `docker stats` shows: usage less inactive page cache), in MiB.
 * Read straight from cgroup v1 files (cgroupfs driver); undefined when the layout differs.
 */
export function containerMemoryMb(id: string): number | undefined {
  const dirs = [`/sys/fs/cgroup/memory/docker/${id}`, `/sys/fs/cgroup/memory/system.slice/docker-${id}.scope`];
  for (const dir of dirs) {
    try {
      const usage = Number(readFileSync(`${dir}/memory.usage_in_bytes`, "utf8"));
      const stat = readFileSync(`${dir}/memory.stat`, "utf8");
      const inactive = Number(/^total_inactive_file (\d+)/m.exec(stat)?.[1] ?? 0);
      return (usage - inactive) / 1024 ** 2;
    } catch {
      /* try the next layout */
    }
  }
  try {
    // cgroup v2
    const dir = `/sys/fs/cgroup/system.slice/docker-${id}.scope`;
    const usage = Number(readFileSync(`${dir}/memory.current`, "utf8"));
    const inactive = Number(/^inactive_file (\d+)/m.exec(readFileSync(`${dir}/memory.stat`, "utf8"))?.[1] ?? 0);
    return (usage - inactive) / 1024 ** 2;
  } catch {
    return undefined;
  }
}
