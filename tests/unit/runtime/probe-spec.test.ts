import { describe, expect, it } from "vitest";
import { buildProbeContainer, PROBE_ENGINE_SOCKET, PROBE_TOOLS_UIDS, probeToolsUser, withRelayReady } from "../../../sandbox-server/src/runtime/probe-spec.ts";

/** The grading probe's shape, which decides what a learner can do to a grade (docs/grading.md). */
describe("grading probe container spec", () => {
  const c = buildProbeContainer({ image: "shipshape/sandbox:test", namespace: "default", sandboxId: "f00d", sessionId: "abc123", enginePid: 4242 });
  const host = c.HostConfig!;

  it("lives outside the sandbox's PID namespace, where the learner cannot see or trace it, on the sandbox's network", () => {
    expect(host.PidMode).toBe("host");
    expect(host.NetworkMode).toBe("container:f00d");
  });

  it("starts the relay for the sandbox's engine process, and points the tools at the relay, not at a path in the sandbox", () => {
    expect(c.Entrypoint).toEqual(["timeout", "120", "perl", "-e", expect.stringContaining("SO_PEERCRED"), "4242", PROBE_ENGINE_SOCKET]);
    expect(c.Env).toContain(`DOCKER_HOST=unix://${PROBE_ENGINE_SOCKET}`);
    expect(JSON.stringify(c.Env)).not.toContain("/proc/");
  });

  it("holds only what reaching the engine takes, and nothing from the host", () => {
    expect(host.CapDrop).toEqual(["ALL"]);
    expect([...(host.CapAdd ?? [])].sort()).toEqual(["DAC_OVERRIDE", "SYS_CHROOT", "SYS_PTRACE"]);
    expect(host.SecurityOpt).toContain("no-new-privileges");
    expect(host.ReadonlyRootfs).toBe(true);
    expect(host.Privileged ?? false).toBe(false);
    expect(host.Binds ?? []).toEqual([]);
    expect(host.Mounts ?? []).toEqual([]);
    expect(host.Devices ?? []).toEqual([]);
    // Runs with the default runtime: a user-namespaced one could not join the host's PID namespace.
    expect(host.Runtime).toBeUndefined();
  });

  it("makes no volume: a tmpfs covers the image's VOLUME /var/lib/docker", () => {
    expect(Object.keys(host.Tmpfs ?? {})).toContain("/var/lib/docker");
  });

  it("ends by itself and is bounded", () => {
    expect(host.AutoRemove).toBe(true);
    expect(host.Memory).toBeGreaterThan(0);
    expect(host.PidsLimit).toBeGreaterThan(0);
  });

  it("runs the tools as a user of their own, far from every range a host hands out", () => {
    expect(probeToolsUser(() => 0)).toBe(`${PROBE_TOOLS_UIDS.first}:${PROBE_TOOLS_UIDS.first}`);
    const last = PROBE_TOOLS_UIDS.first + PROBE_TOOLS_UIDS.count - 1;
    expect(last).toBeLessThan(2 ** 31 - 1);
    expect(PROBE_TOOLS_UIDS.first).toBeGreaterThan(165_536 + 268_435_456); // sysbox's default subuid range ends there
  });

  it("waits for the relay before each tool, then runs it unchanged", () => {
    expect(withRelayReady(["docker", "ps"])).toEqual(["sh", "-c", expect.stringContaining('exec "$@"'), PROBE_ENGINE_SOCKET, "docker", "ps"]);
  });
});
