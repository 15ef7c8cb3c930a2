import { describe, expect, it } from "vitest";
import { CheckRunner, cpuLimit } from "../../../sandbox-server/src/grading/checks.ts";
import { checkSchema } from "../../../contracts/content/exercise-schema.ts";
import type { ExecOptions, ExecResult, SandboxProbe } from "../../../sandbox-server/src/runtime/types.ts";

/**
 * The check kinds judged from `docker inspect` JSON, against a fake probe that answers the docker
 * and curl commands the checks run. The real engine's answers are covered by lesson CI.
 */

type Container = Record<string, unknown> & { Id: string; Name: string };

function container(name: string, over: { Config?: object; State?: object; HostConfig?: object; networks?: string[] } = {}): Container {
  const id = (name.padEnd(8, "x").repeat(8) + "0".repeat(64)).replace(/[^0-9a-f]/g, "a").slice(0, 64);
  return {
    Id: id,
    Name: `/${name}`,
    Image: `sha256:${"1".repeat(64)}`,
    Config: { Image: "busybox", Env: [], Labels: {}, ...over.Config },
    State: { Status: "running", Running: true, ExitCode: 0, OOMKilled: false, ...over.State },
    HostConfig: { Memory: 0, NanoCpus: 0, CpuQuota: 0, CpuPeriod: 0, ...over.HostConfig },
    NetworkSettings: { Networks: Object.fromEntries((over.networks ?? ["bridge"]).map((n) => [n, {}])) },
    Mounts: [],
  };
}

const ok = (stdout: string): ExecResult => ({ exitCode: 0, stdout, stderr: "", timedOut: false, truncated: false });
const notFound: ExecResult = { exitCode: 1, stdout: "", stderr: "Error: No such object", timedOut: false, truncated: false };

interface World {
  containers?: Container[];
  networks?: Record<string, { Driver: string }>;
  images?: Record<string, { files: string[] }>;
}

function fakeProbe(world: World, calls: string[][] = []): SandboxProbe {
  const containers = world.containers ?? [];
  return {
    async exec(cmd: string[], _options?: ExecOptions): Promise<ExecResult> {
      calls.push(cmd);
      const [tool, ...args] = cmd;
      if (tool === "sh" && args[1]?.includes("exec curl")) {
        const url = args.at(-1)!;
        const path = decodeURIComponent(url.split("path=")[1] ?? "");
        const files = Object.values(world.images ?? {})[0]?.files ?? [];
        return ok(files.some((f) => f === path || f.startsWith(`${path}/`)) ? "200" : "404");
      }
      if (tool !== "docker") return notFound;
      const joined = args.join(" ");
      if (joined === "ps -aq --no-trunc") return ok(containers.map((c) => c.Id).join("\n"));
      if (args[0] === "inspect") return ok(JSON.stringify(containers.filter((c) => args.includes(c.Id))));
      if (args[0] === "network" && args[1] === "inspect") {
        const net = world.networks?.[args[2]!];
        return net ? ok(JSON.stringify([{ Name: args[2], ...net }])) : notFound;
      }
      if (args[0] === "image" && args[1] === "inspect") {
        const img = world.images?.[args[2]!];
        return img ? ok(JSON.stringify([{ Id: `sha256:${"2".repeat(64)}`, Size: 1e6, Config: {} }])) : notFound;
      }
      if (args[0] === "create") return ok(`${"c".repeat(64)}\n`);
      if (args[0] === "rm") return ok("");
      return notFound;
    },
    async readFile() {
      return undefined;
    },
    authorScript: () => Promise.reject(new Error("no script checks here")),
    async close() {},
  };
}

async function judge(world: World, check: unknown) {
  return new CheckRunner(fakeProbe(world)).run(checkSchema.parse(check));
}

describe("network check", () => {
  const world: World = {
    networks: { shop: { Driver: "bridge" } },
    containers: [
      container("web", { networks: ["shop"] }),
      container("client", { State: { Status: "exited", Running: false, ExitCode: 0 }, networks: ["shop"] }),
      container("db", { networks: ["bridge"] }),
    ],
  };

  it("fails with the command to run when the network is missing", async () => {
    const v = await judge({}, { kind: "network", name: "shop" });
    expect(v).toEqual({ passed: false, message: "There is no network called `shop` yet (docker network create shop)." });
  });

  it("counts stopped containers as attached, since they keep their network settings", async () => {
    const v = await judge(world, { kind: "network", name: "shop", containers: ["web", "client"], notContainers: ["db"] });
    expect(v.passed).toBe(true);
  });

  it("names the container that is missing from the network, or on it when it should not be", async () => {
    expect((await judge(world, { kind: "network", name: "shop", containers: ["db"] })).message).toBe("The container `db` is not on the network `shop`.");
    expect((await judge(world, { kind: "network", name: "shop", notContainers: ["web"] })).message).toBe(
      "The container `web` should not be on the network `shop`, but it is.",
    );
  });

  it("checks the driver", async () => {
    expect((await judge(world, { kind: "network", name: "shop", driver: "overlay" })).message).toBe("The network `shop` uses the bridge driver, not overlay.");
  });
});

describe("container limits, networks and pinning", () => {
  it("accepts --memory in MiB and says what the limit is otherwise", async () => {
    const hog = container("hog", { HostConfig: { Memory: 32 * 1024 * 1024 } });
    expect((await judge({ containers: [hog] }, { kind: "container", name: "hog", memoryMb: 32 })).passed).toBe(true);
    expect((await judge({ containers: [hog] }, { kind: "container", name: "hog", memoryMb: 64 })).message).toBe(
      "The container `hog` may use 32 MiB of memory, not 64 MiB (--memory 64m).",
    );
    expect((await judge({ containers: [container("hog")] }, { kind: "container", name: "hog", memoryMb: 32 })).message).toBe(
      "The container `hog` has no memory limit (start it with --memory 32m).",
    );
  });

  it("accepts --cpus and the same limit given as --cpu-quota/--cpu-period", async () => {
    expect(cpuLimit({ NanoCpus: 5e8 })).toBe(0.5);
    expect(cpuLimit({ CpuQuota: 50_000, CpuPeriod: 100_000 })).toBe(0.5);
    expect(cpuLimit({ CpuQuota: 25_000 })).toBe(0.25);
    expect(cpuLimit({ CpuQuota: -1 })).toBeUndefined();
    const quota = container("cruncher", { HostConfig: { CpuQuota: 50_000, CpuPeriod: 100_000 } });
    expect((await judge({ containers: [quota] }, { kind: "container", name: "cruncher", cpus: 0.5 })).passed).toBe(true);
    expect((await judge({ containers: [container("cruncher")] }, { kind: "container", name: "cruncher", cpus: 0.5 })).message).toBe(
      "The container `cruncher` has no CPU limit (start it with --cpus 0.5).",
    );
  });

  it("tells an OOM kill from an ordinary exit", async () => {
    const killed = container("hog", { State: { Status: "exited", Running: false, ExitCode: 137, OOMKilled: true } });
    const finished = container("hog", { State: { Status: "exited", Running: false, ExitCode: 0, OOMKilled: false } });
    expect((await judge({ containers: [killed] }, { kind: "container", name: "hog", oomKilled: true })).passed).toBe(true);
    expect((await judge({ containers: [finished] }, { kind: "container", name: "hog", oomKilled: true })).message).toBe(
      "The container `hog` was not killed for lack of memory (it exited with code 0, and docker inspect shows OOMKilled false).",
    );
  });

  it("requires the networks asked for and lists the ones the container is on", async () => {
    const api = container("api", { networks: ["front"] });
    expect((await judge({ containers: [api] }, { kind: "container", name: "api", networks: ["front"] })).passed).toBe(true);
    expect((await judge({ containers: [api] }, { kind: "container", name: "api", networks: ["front", "back"] })).message).toBe(
      "The container `api` is not on the network `back` (it is on `front`).",
    );
  });

  it("sees whether the image was pinned by digest", async () => {
    const digest = `localhost:5000/hello@sha256:${"a".repeat(64)}`;
    const pinned = container("pinned", { Config: { Image: digest } });
    const tagged = container("pinned", { Config: { Image: "localhost:5000/hello:1.0" } });
    const check = { kind: "container", name: "pinned", image: "localhost:5000/hello", imagePinned: true };
    expect((await judge({ containers: [pinned] }, check)).passed).toBe(true);
    expect((await judge({ containers: [tagged] }, check)).message).toBe(
      "The container `pinned` was started from `localhost:5000/hello:1.0`, which is not pinned to a digest (name@sha256:…).",
    );
  });

  it("finds containers by Compose service, whatever Compose named them", async () => {
    const labels = (project: string, service: string) => ({ "com.docker.compose.project": project, "com.docker.compose.service": service });
    const v1 = container("counter_cache_1", { Config: { Image: "redis:7", Labels: labels("counter", "cache") } });
    const v2 = container("counter-cache-1", { Config: { Image: "redis:7", Labels: labels("counter", "cache") } });
    for (const ct of [v1, v2]) {
      expect((await judge({ containers: [ct] }, { kind: "container", composeService: "cache", state: "running" })).passed).toBe(true);
    }
    expect((await judge({ containers: [v1] }, { kind: "container", composeService: "web" })).message).toBe(
      "There is no container of the Compose service `web` yet.",
    );
  });
});

describe("compose check", () => {
  const labels = (project: string, service: string) => ({ "com.docker.compose.project": project, "com.docker.compose.service": service });

  it("says how to start a project when none is up", async () => {
    expect((await judge({ containers: [container("web")] }, { kind: "compose", services: ["web"] })).message).toBe(
      "No Compose project is up yet (run docker compose up -d in the folder of compose.yaml).",
    );
  });

  it("passes when every service of one project runs, and names what is missing otherwise", async () => {
    const web = container("counter_web_1", { Config: { Labels: labels("counter", "web") } });
    const cache = container("counter_cache_1", { Config: { Labels: labels("counter", "cache") } });
    const stopped = container("counter_cache_1", {
      Config: { Labels: labels("counter", "cache") },
      State: { Status: "exited", Running: false, ExitCode: 1 },
    });
    expect((await judge({ containers: [web, cache] }, { kind: "compose", project: "counter", services: ["web", "cache"] })).passed).toBe(true);
    expect((await judge({ containers: [web] }, { kind: "compose", services: ["web", "cache"] })).message).toBe(
      "The Compose project `counter` has no service `cache` (it has `web`).",
    );
    expect((await judge({ containers: [web, stopped] }, { kind: "compose", services: ["web", "cache"] })).message).toBe(
      "The service `cache` of the project `counter` is not running (it is exited with code 1); docker compose logs cache shows why.",
    );
    expect((await judge({ containers: [web, stopped] }, { kind: "compose", services: ["web", "cache"], state: "any" })).passed).toBe(true);
  });

  it("does not mix services of two projects", async () => {
    const a = container("a_web_1", { Config: { Labels: labels("a", "web") } });
    const b = container("b_cache_1", { Config: { Labels: labels("b", "cache") } });
    expect((await judge({ containers: [a, b] }, { kind: "compose", services: ["web", "cache"] })).passed).toBe(false);
  });
});

describe("image files", () => {
  const world: World = { images: { ctxapp: { files: ["/app/app.py", "/app/README.md"] } } };

  it("looks for paths without starting a container, and removes the one it created", async () => {
    const calls: string[][] = [];
    const runner = new CheckRunner(fakeProbe(world, calls));
    const v = await runner.run(checkSchema.parse({ kind: "image", image: "ctxapp", hasFiles: ["/app/app.py"], lacksFiles: ["/app/data"] }));
    expect(v.passed).toBe(true);
    expect(calls.some((c) => c[1] === "start" || c[1] === "run")).toBe(false);
    expect(calls.at(-1)).toEqual(["docker", "rm", "-f", "c".repeat(64)]);
  });

  it("names the path that is missing or should not be there", async () => {
    expect((await judge(world, { kind: "image", image: "ctxapp", hasFiles: ["/app/main.py"] })).message).toBe("The image `ctxapp` has no /app/main.py.");
    expect((await judge(world, { kind: "image", image: "ctxapp", lacksFiles: ["/app"] })).message).toBe(
      "The image `ctxapp` still contains /app; keep it out of the image.",
    );
  });
});

describe("mounts", () => {
  const withMount = (rw: boolean) =>
    ({ ...container("monthly"), Mounts: [{ Type: "bind", Source: "/root/capstone/in", Destination: "/in", RW: rw }] }) as Container;

  it("tells a read-only mount from a writable one", async () => {
    const check = { kind: "container", name: "monthly", mounts: [{ destination: "/in", type: "bind", source: "/root/capstone/in", readOnly: true }] };
    expect((await judge({ containers: [withMount(false)] }, check)).passed).toBe(true);
    expect((await judge({ containers: [withMount(true)] }, check)).message).toBe(
      "At /in, the container `monthly` has a writable mount; mount it read-only (add :ro).",
    );
  });
});
