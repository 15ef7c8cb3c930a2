import { describe, expect, it } from "vitest";
import { buildLxdInstance, cpuAllowance, lxdInstanceName, pickSandboxAddress, rootDiskBytes } from "../../../sandbox-server/src/runtime/lxd-instance-spec.ts";
import { loadConfig, tierText } from "../../../sandbox-server/src/config.ts";

const spec = {
  sessionId: "abc123",
  ownerId: "owner1",
  workshopId: "ws9",
  expiresAt: Date.parse("2030-01-01T00:00:00Z"),
  limits: { memoryBytes: 1024 ** 3, cpus: 1.5, pids: 512, diskBytes: 4 * 1024 ** 3 },
};
const profile = { image: "shipshape-sandbox-0123", network: "shipshape-lx0", pool: "shipshape", namespace: "default" };
const addressing = { ipv4: "10.214.140.7/16", gateway: "10.214.0.1", registryIp: "10.213.0.2" };

describe("LXD instance spec (isolated tier)", () => {
  const body = buildLxdInstance(spec, profile, addressing, Date.parse("2029-12-31T22:00:00Z"));

  it("is an unprivileged container with nesting, built from the sandbox image and no profiles", () => {
    expect(body.type).toBe("container");
    expect(body.source).toEqual({ type: "image", alias: "shipshape-sandbox-0123" });
    expect(body.profiles).toEqual([]);
    expect(body.config["security.privileged"]).toBe("false");
    expect(body.config["security.nesting"]).toBe("true");
    expect(body.config["security.devlxd"]).toBe("false");
    // Knobs that would hand the host to the learner never appear.
    for (const key of Object.keys(body.config)) expect(key).not.toMatch(/^raw\.|^security\.idmap\.base|^linux\.kernel_modules/);
  });

  it("never mounts anything from the host: the only disk is the root disk on the pool", () => {
    const disks = Object.values(body.devices).filter((d) => d.type === "disk");
    expect(disks).toEqual([{ type: "disk", path: "/", pool: "shipshape", size: String(4 * 1024 ** 3) }]);
    expect(Object.values(body.devices).map((d) => d.type).sort()).toEqual(["disk", "nic"]);
    expect(JSON.stringify(body)).not.toMatch(/docker\.sock|"source"\s*:\s*"\//);
  });

  it("applies every limit: memory without swap, CPU time, processes, disk quota", () => {
    expect(body.config["limits.memory"]).toBe(String(1024 ** 3));
    expect(body.config["limits.memory.swap"]).toBe("false");
    expect(body.config["limits.cpu.allowance"]).toBe("150ms/100ms");
    expect(body.config["limits.processes"]).toBe("512");
    expect(body.devices["root"]!["size"]).toBe(String(4 * 1024 ** 3));
    expect(cpuAllowance(0.25)).toBe("25ms/100ms");
    // The quota counts the image's files too: the learner's allowance comes on top of them.
    const withImage = buildLxdInstance(spec, profile, addressing, 0, 500 * 1024 ** 2);
    expect(Number(withImage.devices["root"]!["size"])).toBe(rootDiskBytes(4 * 1024 ** 3, 500 * 1024 ** 2));
    expect(rootDiskBytes(4 * 1024 ** 3, 500 * 1024 ** 2)).toBeGreaterThan(4 * 1024 ** 3 + 550 * 1024 ** 2);
    expect(cpuAllowance(0.001)).toBe("1ms/100ms");
  });

  it("pins the NIC to one address with LXD's MAC and IPv4 filters (no spoofing)", () => {
    expect(body.devices["eth0"]).toEqual({
      type: "nic",
      network: "shipshape-lx0",
      name: "eth0",
      "ipv4.address": "10.214.140.7",
      "security.mac_filtering": "true",
      "security.ipv4_filtering": "true",
    });
    expect(body.config["environment.SHIPSHAPE_IPV4"]).toBe("10.214.140.7/16");
    expect(body.config["environment.SHIPSHAPE_GATEWAY"]).toBe("10.214.0.1");
    expect(body.config["environment.SHIPSHAPE_REGISTRY_IP"]).toBe("10.213.0.2");
  });

  it("keeps session, owner, workshop and expiry in user.* keys so a restarted server can reattach and reap", () => {
    expect(body.name).toBe("shipshape-default-abc123");
    expect(body.config).toMatchObject({
      "user.shipshape.role": "sandbox",
      "user.shipshape.namespace": "default",
      "user.shipshape.session": "abc123",
      "user.shipshape.owner": "owner1",
      "user.shipshape.workshop": "ws9",
      "user.shipshape.created-at": "2029-12-31T22:00:00.000Z",
      "user.shipshape.expires-at": "2030-01-01T00:00:00.000Z",
    });
  });

  it("makes valid, distinct instance names from any session id", () => {
    const valid = /^[a-z][a-z0-9-]{0,62}$/;
    const long = lxdInstanceName("abcdefghijklmnop", "x".repeat(60));
    const odd = lxdInstanceName("default", "Bad_Id.1");
    expect(long).toMatch(valid);
    expect(odd).toMatch(valid);
    expect(lxdInstanceName("default", "Bad_Id.2")).not.toBe(odd);
    expect(lxdInstanceName("abcdefghijklmnop", "x".repeat(61))).not.toBe(long);
  });
});

describe("sandbox addresses on the LXD bridge", () => {
  it("picks a free address in the upper half of the subnet, never the gateway or DHCP range", () => {
    for (let i = 0; i < 200; i++) {
      const a = pickSandboxAddress("10.214.0.1/16", new Set());
      const [, third, fourth] = /^10\.214\.(\d+)\.(\d+)\/16$/.exec(a)!.map(Number);
      expect(third).toBeGreaterThanOrEqual(128);
      expect(third! * 256 + fourth!).toBeLessThan(65535);
    }
  });

  it("skips taken addresses, and says so when none is left", () => {
    const taken = new Set(["10.214.0.128", "10.214.0.129", "10.214.0.130", "10.214.0.131", "10.214.0.132"]);
    // A random source that always proposes the first taken address: the scan must find a free one.
    expect(pickSandboxAddress("10.214.0.1/24", taken, () => 0)).toBe("10.214.0.133/24");
    const all = new Set(Array.from({ length: 127 }, (_, i) => `10.214.0.${128 + i}`));
    expect(() => pickSandboxAddress("10.214.0.1/24", all)).toThrow(/no free address/);
    expect(() => pickSandboxAddress("10.214.0.1", new Set())).toThrow(/prefix length/);
  });
});

describe("tier selection", () => {
  it("picks the isolated tier by default wherever LXD and its image are set up, and classroom when asked", () => {
    // Any existing path stands in for LXD's socket: the choice only looks for it.
    const setUp = { SHIPSHAPE_LXD_SOCKET: import.meta.filename, SHIPSHAPE_LXD_IMAGE: "img" };
    // The isolated tier's grading probe needs root on the LXD host (lxd-probe.ts), so auto needs it too.
    const asRoot = process.getuid?.() === 0;
    expect(loadConfig(setUp).securityTier).toBe(asRoot ? "isolated" : "classroom");
    expect(loadConfig(setUp).sandboxEngine).toBe(asRoot ? "lxd" : "docker");
    expect(loadConfig({ ...setUp, SHIPSHAPE_TIER: "classroom" }).sandboxEngine).toBe("docker");
    // Nothing set up (no image imported in this data directory): classroom.
    expect(loadConfig({ SHIPSHAPE_DATA_DIR: "/nonexistent" }).sandboxEngine).toBe("docker");
    const isolated = loadConfig({ SHIPSHAPE_TIER: "isolated", SHIPSHAPE_LXD_IMAGE: "img" });
    expect(isolated.sandboxEngine).toBe("lxd");
    expect(isolated.securityTier).toBe("isolated");
    expect(isolated.lxdImage).toBe("img");
  });

  it("auto falls back to the classroom tier where LXD is not set up", () => {
    const c = loadConfig({ SHIPSHAPE_TIER: "auto", SHIPSHAPE_LXD_SOCKET: "/nonexistent/lxd.socket", SHIPSHAPE_LXD_IMAGE: "img" });
    expect(c.sandboxEngine).toBe("docker");
    expect(c.securityTier).toBe("classroom");
  });

  it("says at start which tier runs, and how to get the other one", () => {
    expect(tierText({ securityTier: "isolated", sandboxEngine: "lxd", SHIPSHAPE_TIER: "auto" })).toMatch(/isolated tier \(unprivileged LXD system containers\)/);
    expect(tierText({ securityTier: "classroom", sandboxEngine: "docker", SHIPSHAPE_TIER: "classroom" })).toMatch(/classroom tier .*chosen with SHIPSHAPE_TIER=classroom/);
    expect(tierText({ securityTier: "classroom", sandboxEngine: "docker", SHIPSHAPE_TIER: "auto" })).toMatch(/LXD is not set up here; .*SHIPSHAPE_TIER=isolated \.\/shipshape start/);
  });

  it("names the variable when the tier is misspelt", () => {
    expect(() => loadConfig({ SHIPSHAPE_TIER: "isolate" })).toThrow(/SHIPSHAPE_TIER/);
  });
});
