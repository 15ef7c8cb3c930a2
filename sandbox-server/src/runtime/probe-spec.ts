import type { ContainerCreateOptions } from "dockerode";
import { readFileSync } from "node:fs";
import { LABEL } from "./sandbox-spec.ts";

/**
 * The grading probe's container, pure so its security-relevant shape is unit-tested
 * (docs/grading.md, "Where grading runs").
 *
 * One short-lived container from the trusted sandbox image, read-only, on the sandbox's network,
 * in the HOST's PID namespace. Why the host's: the learner is root with CAP_SYS_PTRACE in the
 * sandbox's own PID namespace (the inner engine's `docker exec` into another user's container
 * needs it), so any process there, a probe sharing it included, can be traced and made to say
 * anything. A parent namespace is invisible from inside, and it still shows the sandbox's engine,
 * by the host pid the host's engine reports, so the relay (probe-engine-relay.pl) can check that
 * every connection to the engine socket ends at that very process; a path alone proves nothing,
 * since root in the sandbox can put anything at it.
 *
 * WARNING: the price is root with CAP_SYS_PTRACE among the host's processes. Only the relay and
 * the file reader run as root, and they parse nothing the learner controls. The tools that do
 * (`docker`, `curl`) run as a user of their own (probeToolsUser), with no capabilities and
 * no-new-privileges, so they can neither trace nor signal anything. Never add DAC_READ_SEARCH
 * (open_by_handle_at reaches any file of the host) or mounts of the host here.
 */
export function buildProbeContainer(options: {
  image: string;
  namespace: string;
  sandboxId: string;
  sessionId: string;
  /** The sandbox's first process (its dockerd) as a pid of the host, from the host engine's inspect. */
  enginePid: number;
  /** Seconds the probe lives at most (a kept probe serves many checks; default: one check's 120). */
  lifetimeSeconds?: number;
}): ContainerCreateOptions {
  return {
    Image: options.image,
    // Ends by itself even if the server dies mid-check.
    Entrypoint: ["timeout", String(options.lifetimeSeconds ?? 120), "perl", "-e", ENGINE_RELAY, String(options.enginePid), PROBE_ENGINE_SOCKET],
    Cmd: [],
    Labels: { [LABEL.role]: "probe", [LABEL.namespace]: options.namespace, [LABEL.session]: options.sessionId },
    Env: [`DOCKER_HOST=unix://${PROBE_ENGINE_SOCKET}`, "LANG=C.UTF-8", "HOME=/tmp"],
    HostConfig: {
      PidMode: "host",
      NetworkMode: `container:${options.sandboxId}`,
      ReadonlyRootfs: true,
      Tmpfs: {
        [PROBE_ENGINE_DIR]: "mode=0755,size=64k",
        // Covers the image's VOLUME, which would otherwise cost an anonymous volume per check.
        "/var/lib/docker": "mode=0700,size=64k",
        "/tmp": "mode=1777,size=1m",
      },
      CapDrop: ["ALL"],
      // SYS_PTRACE: reaching into the engine's root (/proc/<pid>/root) and reading its exe is
      // ptrace-level access to a more privileged process. SYS_CHROOT: the file reader takes the
      // sandbox's root as its own. DAC_OVERRIDE: files of any mode, as root in the sandbox reads them.
      CapAdd: ["SYS_PTRACE", "SYS_CHROOT", "DAC_OVERRIDE"],
      // No setuid binary of the image gives the tools' user back what it was denied.
      SecurityOpt: ["no-new-privileges"],
      AutoRemove: true,
      Memory: 256 * 1024 * 1024,
      PidsLimit: 128,
      // No Runtime: the default one (runc), never the sandboxes'. The probe runs only our own
      // code, and a user-namespaced runtime could not join the host's PID namespace.
    },
  };
}

/** The relay (the probe's entry point) and the file reader: Perl, since the sandbox image has no other language to spare. */
export const ENGINE_RELAY = readFileSync(new URL("./probe-engine-relay.pl", import.meta.url), "utf8");
export const READ_FILE_SCRIPT = readFileSync(new URL("./probe-read-file.pl", import.meta.url), "utf8");
/** A kept probe's command server (probe-command-server.pl), run as its tools user. */
export const COMMAND_SERVER_SCRIPT = readFileSync(new URL("./probe-command-server.pl", import.meta.url), "utf8");

/** A tmpfs of the probe's own: nothing outside its mount namespace can reach the relay's socket. */
const PROBE_ENGINE_DIR = "/run/shipshape-probe";
export const PROBE_ENGINE_SOCKET = `${PROBE_ENGINE_DIR}/engine.sock`;

/** How the relay's refusals begin (its HTTP 502 message, which `docker` prints on standard error). */
export const RELAY_REFUSED = "shipshape-probe refused";

/**
 * The probe's tools run as a user drawn from here, a new one per probe (two probes' tools sharing
 * a uid could trace each other): above the ranges that subuid files, userns-remap and sysbox hand
 * out, so no other process of the host runs as it.
 */
export const PROBE_TOOLS_UIDS = { first: 1_900_000_000, count: 200_000_000 };

export function probeToolsUser(random: (n: number) => number): string {
  const uid = PROBE_TOOLS_UIDS.first + random(PROBE_TOOLS_UIDS.count);
  return `${uid}:${uid}`;
}

/** Prefixed to each of the tools' commands ($0 = the relay's socket): waits up to 2 s for the relay, which binds a moment after it starts. */
export function withRelayReady(cmd: string[], socket = PROBE_ENGINE_SOCKET): string[] {
  const wait = `n=0
while [ ! -S "$0" ] && [ "$n" -lt 200 ]; do sleep 0.01; n=$((n + 1)); done
exec "$@"`;
  return ["sh", "-c", wait, socket, ...cmd];
}
