import { createHash } from "node:crypto";
import type { SandboxSpec } from "./types.ts";

/**
 * LXD keeps our bookkeeping in `user.*` config keys, the counterpart of the Docker tier's labels
 * (sandbox-spec.ts LABEL): a restarted server reattaches and the reaper cleans up by them.
 */
export const USER_KEY = {
  role: "user.shipshape.role",
  namespace: "user.shipshape.namespace",
  session: "user.shipshape.session",
  owner: "user.shipshape.owner",
  workshop: "user.shipshape.workshop",
  createdAt: "user.shipshape.created-at",
  expiresAt: "user.shipshape.expires-at",
} as const;

export interface LxdProfile {
  /** Alias of the image ./shipshape setup imported (ensure-lxd.sh writes it to <data>/lxd-image). */
  image: string;
  /** The managed bridge the sandboxes join. */
  network: string;
  /** The storage pool of the sandboxes' root disks (btrfs: copy-on-write clones and quotas). */
  pool: string;
  namespace: string;
}

/** Where a sandbox sits on the bridge: its fixed address, the gateway and the registry mirror. */
export interface LxdAddressing {
  /** The sandbox's own address with the bridge's prefix length, e.g. 10.214.140.7/16. */
  ipv4: string;
  gateway: string;
  registryIp: string;
  /**
   * The bridge is not one of LXD's managed networks but a host bridge it attaches to as a plain
   * parent (the members of a one-machine test cluster share the host LXD's bridge this way; on
   * several machines each member manages its own bridge and this stays false).
   */
  unmanagedBridge?: boolean;
}

/**
 * An LXD instance name: a host name (letters, digits, '-'; at most 63; no leading digit or '-').
 * Session ids are lowercase letters and digits already; anything else is replaced, and a name that
 * would be too long ends in a hash of the whole, so two sessions never share a name.
 */
export function lxdInstanceName(namespace: string, sessionId: string): string {
  const clean = `shipshape-${namespace}-${sessionId}`.toLowerCase().replace(/[^a-z0-9-]/g, "-");
  if (clean.length <= 63 && clean === `shipshape-${namespace}-${sessionId}`) return clean;
  const hash = createHash("sha256").update(`${namespace}\0${sessionId}`).digest("hex").slice(0, 10);
  return `${clean.slice(0, 52).replace(/-+$/, "")}-${hash}`;
}

/**
 * LXD's btrfs quota counts everything the root disk references, the sandbox image's own files
 * included (about 490 MiB), so the learner's allowance comes on top of the image. The image's
 * size in LXD is its tarball's; the unpacked tree takes a little more (metadata), hence the margin.
 */
export function rootDiskBytes(learnerBytes: number, imageBytes: number): number {
  return learnerBytes + (imageBytes > 0 ? Math.ceil(imageBytes * 1.1) + 64 * 1024 ** 2 : 0);
}

/** CPU time per 100 ms period: LXD's limits.cpu takes whole CPUs only, the allowance takes fractions. */
export function cpuAllowance(cpus: number): string {
  return `${Math.max(1, Math.round(cpus * 100))}ms/100ms`;
}

/**
 * The body of `POST /1.0/instances` for one sandbox. Pure, so the security-relevant shape is unit-tested.
 *
 * What makes this the isolated tier: the container is unprivileged (root inside is uid 100000+ on
 * the host, in a user namespace of its own), so the kernel refuses what the classroom tier cannot
 * stop (writing kernel.core_pattern through a fresh procfs, mknod of host disks). security.nesting
 * lets the inner dockerd mount its overlay and proc filesystems; it grants nothing on the host.
 * Never set security.privileged, raw.lxc, raw.idmap or disk devices with a host `source` here.
 */
export function buildLxdInstance(
  spec: SandboxSpec,
  profile: LxdProfile,
  addressing: LxdAddressing,
  createdAt: number,
  imageBytes = 0,
): LxdInstancePost {
  const name = lxdInstanceName(profile.namespace, spec.sessionId);
  const address = addressing.ipv4.split("/")[0]!;
  return {
    name,
    type: "container",
    source: { type: "image", alias: profile.image },
    // No profiles: every device and limit is spelled out below, so an operator's edit of LXD's
    // default profile cannot add a host mount or lift a limit without this code changing.
    profiles: [],
    config: {
      "security.privileged": "false",
      "security.nesting": "true",
      // /dev/lxd would let the learner read this config (and talk to LXD's guest API); nothing needs it.
      "security.devlxd": "false",
      "boot.autostart": "false",
      "limits.memory": String(spec.limits.memoryBytes),
      "limits.memory.enforce": "hard",
      "limits.memory.swap": "false",
      "limits.cpu.allowance": cpuAllowance(spec.limits.cpus),
      "limits.processes": String(spec.limits.pids),
      // Read by /sbin/init (images/lxd/init), which configures the network before dockerd starts.
      "environment.SHIPSHAPE_IPV4": addressing.ipv4,
      "environment.SHIPSHAPE_GATEWAY": addressing.gateway,
      "environment.SHIPSHAPE_REGISTRY_IP": addressing.registryIp,
      "environment.TERM": "xterm-256color",
      "environment.LANG": "C.UTF-8",
      [USER_KEY.role]: "sandbox",
      [USER_KEY.namespace]: profile.namespace,
      [USER_KEY.session]: spec.sessionId,
      [USER_KEY.owner]: spec.ownerId,
      [USER_KEY.workshop]: spec.workshopId ?? "",
      [USER_KEY.createdAt]: new Date(createdAt).toISOString(),
      [USER_KEY.expiresAt]: new Date(spec.expiresAt).toISOString(),
    },
    devices: {
      // The whole sandbox (its inner /var/lib/docker included) lives on this disk; on btrfs the size
      // is a real quota, which the classroom tier's volume does not have.
      root: { type: "disk", path: "/", pool: profile.pool, size: String(rootDiskBytes(spec.limits.diskBytes, imageBytes)) },
      eth0: {
        type: "nic",
        ...(addressing.unmanagedBridge ? { nictype: "bridged", parent: profile.network } : { network: profile.network }),
        name: "eth0",
        // A fixed address, and LXD's filters drop every frame with another source MAC or IPv4 address
        // (and ARP claiming one): a sandbox cannot pose as another or as the registry.
        "ipv4.address": address,
        "security.mac_filtering": "true",
        "security.ipv4_filtering": "true",
      },
    },
  };
}

export interface LxdInstancePost {
  name: string;
  type: "container";
  source: { type: "image"; alias: string };
  profiles: string[];
  config: Record<string, string>;
  devices: Record<string, Record<string, string>>;
}

const ip2int = (ip: string): number => ip.split(".").reduce((n, part) => n * 256 + Number(part), 0);
const int2ip = (n: number): string => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");

/**
 * A free address for a new sandbox in the upper half of the bridge's subnet (the lower half holds
 * the gateway and LXD's small DHCP range). `taken` holds every address already given to an instance.
 * With `within: "all"` the whole block is used: a range an operator set aside for sandboxes
 * (user.shipshape.sandbox-range), where nothing else lives.
 */
export function pickSandboxAddress(
  bridgeCidr: string,
  taken: ReadonlySet<string>,
  random: () => number = Math.random,
  within: "upper-half" | "all" = "upper-half",
): string {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(bridgeCidr);
  if (!m) throw new Error(`the LXD bridge's ipv4.address "${bridgeCidr}" is not an address with a prefix length`);
  const prefix = Number(m[2]);
  if (prefix < 8 || prefix > 24) throw new Error(`the LXD bridge's subnet /${prefix} is outside /8../24`);
  const size = 2 ** (32 - prefix);
  const base = ip2int(m[1]!) - (ip2int(m[1]!) % size);
  // In a whole range the network and broadcast addresses of the block are skipped all the same.
  const first = within === "all" ? base + 1 : base + size / 2;
  const count = base + size - 1 - first;
  // Random first (parallel starts rarely collide), then a scan, so a nearly full subnet still works.
  for (let i = 0; i < 32; i++) {
    const candidate = int2ip(first + Math.floor(random() * count));
    if (!taken.has(candidate)) return `${candidate}/${prefix}`;
  }
  for (let n = first; n < base + size - 1; n++) {
    if (!taken.has(int2ip(n))) return `${int2ip(n)}/${prefix}`;
  }
  throw new Error(`no free address left on the LXD bridge ${bridgeCidr}`);
}
