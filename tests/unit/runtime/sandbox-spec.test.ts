import { describe, expect, it } from "vitest";
import { buildSandboxContainer } from "../../../sandbox-server/src/runtime/sandbox-spec.ts";

const spec = {
  sessionId: "abc123",
  ownerId: "owner1",
  expiresAt: Date.parse("2030-01-01T00:00:00Z"),
  limits: { memoryBytes: 1024 ** 3, cpus: 1.5, pids: 512, diskBytes: 4 * 1024 ** 3 },
};
const profile = { image: "shipshape/sandbox:test", network: "shipshape-sandboxes", namespace: "default", runtime: "" };

describe("sandbox container spec", () => {
  const c = buildSandboxContainer(spec, profile, Date.parse("2029-12-31T22:00:00Z"));
  const host = c.HostConfig!;

  it("never mounts anything from the host: no Docker socket, no bind mounts, no devices", () => {
    expect(host.Binds ?? []).toEqual([]);
    expect(host.Devices ?? []).toEqual([]);
    expect(host.Privileged ?? false).toBe(false);
    for (const m of host.Mounts ?? []) expect(m.Type).toBe("volume");
    expect(JSON.stringify(c)).not.toContain("docker.sock");
  });

  it("applies every limit", () => {
    expect(host.Memory).toBe(1024 ** 3);
    expect(host.MemorySwap).toBe(1024 ** 3);
    expect(host.NanoCpus).toBe(1.5e9);
    expect(host.PidsLimit).toBe(512);
  });

  it("labels the sandbox so a restarted server can find and reap it", () => {
    expect(c.Labels).toMatchObject({
      "org.shipshape.role": "sandbox",
      "org.shipshape.namespace": "default",
      "org.shipshape.session": "abc123",
      "org.shipshape.owner": "owner1",
      "org.shipshape.expires-at": "2030-01-01T00:00:00.000Z",
    });
    expect(host.Mounts?.[0]?.VolumeOptions?.Labels).toEqual(c.Labels);
  });

  it("uses the trusted-classroom DinD profile only without a stronger runtime", () => {
    expect(host.CapAdd).toEqual(["ALL"]);
    // Capabilities that act on the host's kernel, not the sandbox, are dropped (docs/security.md).
    for (const cap of ["SYS_RESOURCE", "DAC_READ_SEARCH", "SYS_MODULE", "SYS_BOOT", "SYS_TIME", "SYS_RAWIO", "SYSLOG"]) {
      expect(host.CapDrop).toContain(cap);
    }
    // ...but not those a nested dockerd and its containers need.
    for (const cap of ["SYS_ADMIN", "NET_ADMIN", "MKNOD", "NET_RAW", "SETUID", "SETGID", "CHOWN", "DAC_OVERRIDE", "AUDIT_WRITE"]) {
      expect(host.CapDrop).not.toContain(cap);
    }
    expect((host as { CgroupnsMode?: string }).CgroupnsMode).toBe("private");
    const isolated = buildSandboxContainer(spec, { ...profile, runtime: "sysbox-runc" }, 0).HostConfig!;
    expect(isolated.Runtime).toBe("sysbox-runc");
    expect(isolated.CapAdd).toBeUndefined();
    expect(isolated.SecurityOpt).toBeUndefined();
  });
});
