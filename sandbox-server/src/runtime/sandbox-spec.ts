import type { ContainerCreateOptions } from "dockerode";
import type { SandboxSpec } from "./types.ts";

/** Labels on everything a sandbox owns, so a restarted server can reattach and the reaper can clean up. */
export const LABEL = {
  role: "org.shipshape.role",
  namespace: "org.shipshape.namespace",
  session: "org.shipshape.session",
  owner: "org.shipshape.owner",
  workshop: "org.shipshape.workshop",
  createdAt: "org.shipshape.created-at",
  expiresAt: "org.shipshape.expires-at",
} as const;

export interface DockerProfile {
  image: string;
  network: string;
  namespace: string;
  /** OCI runtime, e.g. "sysbox-runc"; empty for runc with the trusted-classroom profile. */
  runtime: string;
}

export function sandboxName(namespace: string, sessionId: string): string {
  return `shipshape-${namespace}-${sessionId}`;
}

export function storageVolumeName(containerName: string): string {
  return `${containerName}-docker`;
}

export function sandboxLabels(spec: SandboxSpec, namespace: string, createdAt: number): Record<string, string> {
  return {
    [LABEL.role]: "sandbox",
    [LABEL.namespace]: namespace,
    [LABEL.session]: spec.sessionId,
    [LABEL.owner]: spec.ownerId,
    [LABEL.workshop]: spec.workshopId ?? "",
    [LABEL.createdAt]: new Date(createdAt).toISOString(),
    [LABEL.expiresAt]: new Date(spec.expiresAt).toISOString(),
  };
}

/**
 * Capabilities the classroom profile drops although "ALL" is added: a nested dockerd and the
 * containers it runs need none of them, and each acts on the host's kernel rather than on the
 * sandbox (docs/security.md). SYS_RESOURCE is not in the bounding set on some hosts at all.
 */
export const CLASSROOM_CAP_DROP = [
  "SYS_RESOURCE",
  "DAC_READ_SEARCH", // open_by_handle_at: opens any file of the host filesystem behind /etc/hosts
  "SYS_MODULE", // load kernel modules
  "SYS_BOOT", // reboot, kexec_load a new kernel
  "SYS_TIME", // set the host's clock
  "SYS_RAWIO", // I/O ports, /dev/mem
  "SYSLOG", // read and clear the host's kernel log
  "SYS_PACCT", // host process accounting
  "SYS_TTY_CONFIG", // host terminals
  "MAC_ADMIN",
  "MAC_OVERRIDE",
  "AUDIT_CONTROL",
  "AUDIT_READ",
  "WAKE_ALARM",
  "BLOCK_SUSPEND",
] as const;

/**
 * The container for one sandbox. Pure, so the security-relevant shape is unit-tested.
 *
 * WARNING: the "classroom" profile (plain runc) gives the container every capability but those
 * in CLASSROOM_CAP_DROP and no seccomp/AppArmor filter, because an inner dockerd needs them
 * (SYS_ADMIN above all). A learner who is root inside can therefore still reach kernel interfaces
 * (a fresh procfs mount writes /proc/sys); it is meant for trusted classrooms. docs/security.md
 * lists what holds and what does not, each row proven by tests/security/attacks.test.ts.
 * Public deployments set `runtime` to a user-namespaced runtime (sysbox-runc), which needs none
 * of this. Never add host mounts, host devices or the host's Docker socket here.
 */
export function buildSandboxContainer(
  spec: SandboxSpec,
  profile: DockerProfile,
  createdAt: number,
): ContainerCreateOptions {
  const name = sandboxName(profile.namespace, spec.sessionId);
  const labels = sandboxLabels(spec, profile.namespace, createdAt);
  const isolated = profile.runtime !== "";
  return {
    name,
    Image: profile.image,
    Hostname: "sandbox",
    Labels: labels,
    Env: ["TERM=xterm-256color", "LANG=C.UTF-8"],
    WorkingDir: "/root",
    NetworkDisabled: false,
    HostConfig: {
      NetworkMode: profile.network,
      ...(isolated
        ? { Runtime: profile.runtime }
        : {
            CgroupnsMode: "private",
            CapAdd: ["ALL"],
            CapDrop: [...CLASSROOM_CAP_DROP],
            SecurityOpt: ["seccomp=unconfined", "apparmor=unconfined"],
          }),
      Memory: spec.limits.memoryBytes,
      MemorySwap: spec.limits.memoryBytes, // no swap: the memory limit is the limit
      NanoCpus: Math.round(spec.limits.cpus * 1e9),
      PidsLimit: spec.limits.pids,
      RestartPolicy: { Name: "no" },
      Mounts: [
        {
          // The inner engine's storage cannot live on the container's own overlay filesystem.
          Type: "volume",
          Source: storageVolumeName(name),
          Target: "/var/lib/docker",
          VolumeOptions: { Labels: labels, NoCopy: false, DriverConfig: { Name: "local", Options: {} } },
        },
      ],
    },
  };
}
