import { describe, expect, it } from "vitest";
import {
  ENGINE_STATE_COMMAND,
  engineStateCommand,
  instructionOf,
  parseContainer,
  parseEngineState,
  parseHistory,
} from "../../../sandbox-server/src/inspector/engine-state.ts";
import { describeChanges } from "../../../sandbox-server/src/inspector/state-changes.ts";
import type { SandboxState } from "../../../contracts/sandbox-state.ts";

const hex = (c: string) => c.repeat(64).slice(0, 64);
const WEB = hex("a");
const DB = hex("b");
const NGINX = `sha256:${hex("1")}`;
const APP1 = `sha256:${hex("2")}`;
const APP2 = `sha256:${hex("3")}`;

function container(over: Record<string, unknown> = {}) {
  return JSON.stringify({
    id: WEB,
    name: "/web",
    image: "nginx:alpine",
    imageId: NGINX,
    state: { status: "running", exitCode: 0, oom: false, startedAt: "2026-12-02T05:00:00Z" },
    path: "/docker-entrypoint.sh",
    args: ["nginx", "-g", "daemon off;"],
    mounts: [{ Type: "volume", Name: "data", Source: "/var/lib/docker/volumes/data/_data", Destination: "/usr/share/nginx/html", RW: true }],
    networks: ["appnet", ""],
    env: ["PATH", "SECRET_TOKEN=hunter2", ""],
    ports: { "80/tcp": [{ HostIp: "0.0.0.0", HostPort: "8080" }, { HostIp: "::", HostPort: "8080" }], "443/tcp": null },
    ...over,
  });
}

const history = (...rows: Array<[string, number, string]>) => rows.map(([at, size, by]) => JSON.stringify({ at, size: String(size), by }));
const base: Array<[string, number, string]> = [
  ["2026-01-01T00:00:00Z", 7_000_000, "/bin/sh -c #(nop) ADD file:abc in / "],
  ["2026-01-01T00:00:01Z", 0, '/bin/sh -c #(nop)  CMD ["/bin/sh"]'],
];

/** What the state script prints for: web (running, volume data, network appnet) from nginx; app:v1 and app:v2 built on one base. */
function output(): string {
  return [
    "@@containers",
    container(),
    container({ id: DB, name: "/db", image: "app:v1", imageId: APP1, state: { status: "exited", exitCode: 137, oom: true }, ports: {}, mounts: [], networks: ["bridge"] }),
    "@@images",
    JSON.stringify({ id: NGINX, tags: ["nginx:alpine"], size: 50_000_000 }),
    JSON.stringify({ id: APP1, tags: ["app:v1"], size: 9_000_000 }),
    JSON.stringify({ id: APP2, tags: ["app:v2"], size: 9_500_000 }),
    `@@history ${NGINX}`,
    ...history(["2025-06-01T00:00:00Z", 50_000_000, "/bin/sh -c #(nop) ADD file:zzz in / "]),
    `@@history ${APP1}`,
    ...history(["2026-12-02T05:01:00Z", 2_000_000, "COPY app.txt /app/ # buildkit"], ["2026-12-02T05:00:00Z", 0, "RUN /bin/sh -c echo hi # buildkit"], ...[...base].reverse()),
    `@@history ${APP2}`,
    ...history(["2026-12-02T05:02:00Z", 2_500_000, "COPY app.txt /app/ # buildkit"], ["2026-12-02T05:00:00Z", 0, "RUN /bin/sh -c echo hi # buildkit"], ...[...base].reverse()),
    "@@volumes",
    JSON.stringify({ name: "data", driver: "local" }),
    JSON.stringify({ name: "unused", driver: "local" }),
    "@@networks",
    JSON.stringify({ name: "bridge", driver: "bridge" }),
    JSON.stringify({ name: "appnet", driver: "bridge" }),
    "@@end",
    "",
  ].join("\n");
}

describe("sandbox state: parsing what the engine printed", () => {
  it("reads containers with state, exit code, OOM, mounts, networks and published ports", () => {
    const s = parseEngineState(output());
    expect(s.rejected).toBe(0);
    expect(s.truncated).toBe(false);
    expect(s.containers.map((c) => [c.name, c.status, c.exitCode, c.oomKilled])).toEqual([
      ["db", "exited", 137, true],
      ["web", "running", null, false],
    ]);
    const web = s.containers.find((c) => c.name === "web")!;
    expect(web.command).toBe("/docker-entrypoint.sh nginx -g daemon off;");
    expect(web.mounts).toEqual([{ type: "volume", source: "data", destination: "/usr/share/nginx/html", readOnly: false }]);
    expect(web.networks).toEqual(["appnet"]);
    // IPv4 and IPv6 bindings of one port are one; an exposed-only port is not published.
    expect(web.ports).toEqual([{ hostPort: 8080, containerPort: 80, protocol: "tcp", reachable: true }]);
  });

  it("keeps env names and drops values, even when a fake docker prints them", () => {
    const web = parseEngineState(output()).containers.find((c) => c.name === "web")!;
    expect(web.envNames).toEqual(["PATH", "SECRET_TOKEN"]);
    expect(JSON.stringify(web)).not.toContain("hunter2");
  });

  it("links volumes and networks to the containers that use them", () => {
    const s = parseEngineState(output());
    expect(s.volumes).toEqual([
      { name: "data", driver: "local", usedBy: ["web"] },
      { name: "unused", driver: "local", usedBy: [] },
    ]);
    expect(s.networks.map((n) => [n.name, n.builtIn, n.containers])).toEqual([
      ["appnet", false, ["web"]],
      ["bridge", true, ["db"]],
    ]);
    expect(s.images.find((i) => i.tags[0] === "app:v1")!.usedBy).toEqual(["db"]);
  });

  it("draws layer stacks oldest first and marks the layers two builds share", () => {
    const s = parseEngineState(output());
    const v1 = s.images.find((i) => i.tags[0] === "app:v1")!;
    const v2 = s.images.find((i) => i.tags[0] === "app:v2")!;
    expect(v1.layers.map((l) => [l.instruction, l.size])).toEqual([
      ["ADD", 7_000_000],
      ["CMD", 0],
      ["RUN", 0],
      ["COPY", 2_000_000],
    ]);
    // Base and the cached RUN are shared; the rebuilt COPY (new time, new size) is not.
    expect(v2.layers.map((l) => l.sharedWith)).toEqual([["app:v1"], ["app:v1"], ["app:v1"], []]);
    expect(v1.layers[3]!.sharedWith).toEqual([]);
    // A different base shares nothing.
    expect(s.images.find((i) => i.tags[0] === "nginx:alpine")!.layers[0]!.sharedWith).toEqual([]);
  });

  it("names the instruction of BuildKit and classic-builder history lines", () => {
    expect(instructionOf("RUN /bin/sh -c apk add curl # buildkit")).toBe("RUN");
    expect(instructionOf("/bin/sh -c #(nop)  EXPOSE 80")).toBe("EXPOSE");
    expect(instructionOf("/bin/sh -c apt-get update")).toBe("RUN");
    expect(instructionOf("|1 TARGETARCH=amd64 /bin/sh -c apk add curl")).toBe("RUN");
    expect(instructionOf("WORKDIR /app")).toBe("WORKDIR");
    expect(instructionOf("something odd")).toBe("");
  });

  it("drops records that are not what docker prints, and counts them", () => {
    const text = [
      "@@containers",
      container({ id: "not-hex" }),
      container({ name: "/<script>alert(1)</script>" }),
      container({ state: { status: "hacked" } }),
      "not json at all",
      "[1,2,3]",
      container(),
      "@@volumes",
      JSON.stringify({ name: "../../../etc", driver: "local" }),
      "@@end",
    ].join("\n");
    const s = parseEngineState(text);
    expect(s.containers.map((c) => c.name)).toEqual(["web"]);
    expect(s.rejected).toBe(6);
    expect(s.volumes).toEqual([]);
  });

  it("bounds what a hostile sandbox prints: counts, text length, control characters", () => {
    const many = Array.from({ length: 500 }, (_, i) => container({ id: i.toString(16).padStart(64, "0"), name: `/c${i}` }));
    const s = parseEngineState(["@@containers", ...many, "@@end"].join("\n"));
    expect(s.containers).toHaveLength(100);
    expect(s.truncated).toBe(true);
    const long = parseContainer(container({ args: ["x".repeat(30_000)], path: "\u001b[2J" }))!;
    expect(long.command.length).toBeLessThanOrEqual(300);
    expect(long.command).not.toContain("\u001b");
    // A record longer than any docker prints is dropped whole.
    expect(parseContainer(container({ args: ["x".repeat(100_000)] }))).toBeUndefined();
    // A second "@@containers" section from a fake docker does not add to the first.
    const twice = parseEngineState(["@@containers", container(), "@@containers", container({ id: DB, name: "/fake" }), "@@end"].join("\n"));
    expect(twice.containers.map((c) => c.name)).toEqual(["web"]);
  });

  it("says the read was cut short when the script's end marker is missing", () => {
    expect(parseEngineState("@@containers\n" + container()).truncated).toBe(true);
  });

  it("refuses a history that is not all history lines", () => {
    expect(parseHistory(['{"at":"x","size":"12","by":"RUN a"}', "garbage"])).toBeUndefined();
  });

  it("reuses the layers of images it already read, and asks only for new ones", () => {
    const first = parseEngineState(output());
    expect(engineStateCommand(first.histories.keys()).slice(4)).toEqual([NGINX, APP1, APP2]);
    expect(engineStateCommand(["not-an-id; rm -rf /"]).slice(4)).toEqual([]);
    // The next read printed no history for app:v1 and app:v2: their cached layers are used, and sharing still holds.
    const again = output().split("\n");
    const cut = again.filter((_, i) => {
      const start = again.indexOf(`@@history ${APP1}`);
      const end = again.indexOf("@@volumes");
      return i < start || i >= end;
    });
    const second = parseEngineState(cut.join("\n"), first.histories);
    expect(second.images.find((i) => i.tags[0] === "app:v2")!.layers.map((l) => l.sharedWith)).toEqual([["app:v1"], ["app:v1"], ["app:v1"], []]);
    expect(second.histories.size).toBe(3);
  });

  it("runs as one shell command that prints env names only", () => {
    expect(ENGINE_STATE_COMMAND.slice(0, 2)).toEqual(["sh", "-c"]);
    expect(ENGINE_STATE_COMMAND[2]).toContain('(index (split . "=") 0)');
    expect(ENGINE_STATE_COMMAND[2]).not.toMatch(/\{\{json \.Config\.Env\}\}/);
  });
});

describe("sandbox state: what changed, in words", () => {
  const state = (text: string): SandboxState => ({ ...parseEngineState(text), ports: [] });
  const empty = state("@@end");
  const withWeb = state(["@@containers", container(), "@@volumes", JSON.stringify({ name: "data", driver: "local" }), "@@end"].join("\n"));

  it("says nothing for the first snapshot", () => {
    expect(describeChanges(undefined, withWeb)).toEqual([]);
  });

  it("names a started container and what it publishes, and a new volume", () => {
    expect(describeChanges(empty, withWeb)).toEqual(["container web started, publishes 8080", "volume data created"]);
  });

  it("says how a container ended: exit code or out of memory", () => {
    const exited = state(["@@containers", container({ state: { status: "exited", exitCode: 3, oom: false } }), "@@volumes", JSON.stringify({ name: "data", driver: "local" }), "@@end"].join("\n"));
    expect(describeChanges(withWeb, exited)).toEqual(["container web exited with code 3"]);
    const oom = state(["@@containers", container({ state: { status: "exited", exitCode: 137, oom: true } }), "@@volumes", JSON.stringify({ name: "data", driver: "local" }), "@@end"].join("\n"));
    expect(describeChanges(withWeb, oom)).toEqual(["container web was killed: out of memory"]);
  });

  it("names what went away, and images with their shared layers", () => {
    expect(describeChanges(withWeb, empty)).toEqual(["container web removed", "volume data removed"]);
    const images = state(output());
    expect(describeChanges(empty, images)).toContain("image app:v2 added, 4 layers, 3 shared with other images");
  });

  it("caps a flood of changes", () => {
    const many = state(["@@volumes", ...Array.from({ length: 30 }, (_, i) => JSON.stringify({ name: `v${i}`, driver: "local" })), "@@end"].join("\n"));
    const said = describeChanges(empty, many);
    expect(said).toHaveLength(8);
    expect(said[7]).toBe("and 23 more changes");
  });
});
