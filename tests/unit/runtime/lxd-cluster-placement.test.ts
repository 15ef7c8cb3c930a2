/** The pure parts of sandboxes on an LXD cluster: a NIC on a shared host bridge, addresses from a range of their own, and the learner's words. */
import { describe, expect, it } from "vitest";
import { buildLxdInstance, pickSandboxAddress } from "../../../sandbox-server/src/runtime/lxd-instance-spec.ts";
import { sandboxGoneMessage } from "../../../sandbox-server/src/sessions/session-messages.ts";
import type { SessionPolicy } from "../../../sandbox-server/src/sessions/session-manager.ts";

const spec = { sessionId: "abc", ownerId: "o", expiresAt: 0, limits: { memoryBytes: 1 << 30, cpus: 1, pids: 100, diskBytes: 1 << 30 } };
const profile = { image: "img", network: "shipshape-lx0", pool: "shipshape", namespace: "ns" };

describe("sandboxes on an LXD cluster", () => {
  it("attach to a host bridge LXD does not manage as a plain parent, still filtered to their own address", () => {
    const nic = buildLxdInstance(spec, profile, { ipv4: "10.214.64.5/16", gateway: "10.214.0.1", registryIp: "", unmanagedBridge: true }, 0).devices["eth0"];
    expect(nic).toEqual({
      type: "nic",
      nictype: "bridged",
      parent: "shipshape-lx0",
      name: "eth0",
      "ipv4.address": "10.214.64.5",
      "security.mac_filtering": "true",
      "security.ipv4_filtering": "true",
    });
    const managed = buildLxdInstance(spec, profile, { ipv4: "10.214.200.5/16", gateway: "10.214.0.1", registryIp: "" }, 0).devices["eth0"];
    expect(managed).toMatchObject({ network: "shipshape-lx0" });
    expect(managed).not.toHaveProperty("parent");
  });

  it("take addresses from the whole range set aside for them, never its network or broadcast address", () => {
    const seen = new Set<string>();
    for (const r of [0, 0.5, 0.999999]) seen.add(pickSandboxAddress("10.214.64.0/18", new Set(), () => r, "all"));
    for (const a of seen) {
      const [ip, prefix] = a.split("/");
      expect(prefix).toBe("18");
      const third = Number(ip!.split(".")[2]);
      expect(third).toBeGreaterThanOrEqual(64);
      expect(third).toBeLessThanOrEqual(127);
      expect(ip).not.toBe("10.214.64.0");
      expect(ip).not.toBe("10.214.127.255");
    }
    expect(pickSandboxAddress("10.214.64.0/18", new Set(), () => 0, "all")).toBe("10.214.64.1/18");
    // A small range, nearly full: the scan finds the one address left.
    const taken = new Set(Array.from({ length: 254 }, (_, i) => `10.9.0.${i + 1}`).filter((a) => a !== "10.9.0.200"));
    expect(pickSandboxAddress("10.9.0.0/24", taken, () => 0, "all")).toBe("10.9.0.200/24");
    // The bridge's own default stays the upper half.
    expect(pickSandboxAddress("10.214.0.1/16", new Set(), () => 0)).toBe("10.214.128.0/16");
  });

  it("tell a learner whose machine went down what happened and what to do", () => {
    const msg = sandboxGoneMessage("member-lost", { limits: spec.limits } as unknown as SessionPolicy);
    expect(msg).toMatch(/machine your sandbox ran on stopped/);
    expect(msg).toMatch(/new sandbox/);
    expect(sandboxGoneMessage("stopped", { limits: spec.limits } as unknown as SessionPolicy)).not.toMatch(/machine/);
  });
});
