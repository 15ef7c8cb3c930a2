import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { PassThrough, type Duplex } from "node:stream";
import type Docker from "dockerode";
import { fileURLToPath } from "node:url";
import type { Logger } from "../log.ts";
import { LABEL } from "./sandbox-spec.ts";

const PORT_PINS_SCRIPT = fileURLToPath(new URL("./port-pins.sh", import.meta.url));
const EGRESS_POLICY_SCRIPT = fileURLToPath(new URL("../../setup/egress-policy.sh", import.meta.url));
const HELPER_TIMEOUT_MS = 60_000;
/** Label naming the namespace whose server started a helper. */
const GUARD_OF = "org.shipshape.guard-of";

/** A running sandbox as the engine sees it: what its bridge port is pinned to. */
export interface PinTarget {
  id: string;
  pid: number;
  mac: string;
  ip: string;
}

const macPattern = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;
const ipv4Pattern = /^\d{1,3}(?:\.\d{1,3}){3}$/;

/**
 * The host firewall around the sandbox bridge, Docker edition: the egress policy of
 * setup/egress-policy.sh (checked, and re-applied with the same script) and a pin per sandbox port
 * (port-pins.sh). Checks and pins run in a helper container with the host's network; re-applying
 * runs set-up's script, which starts a helper of its own. The server needs the Docker API (and the
 * docker CLI for re-applying), never root on the host.
 */
export class DockerNetworkGuard {
  private readonly docker: Docker;
  private readonly image: string;
  private readonly network: string;
  private readonly namespace: string;
  private readonly log: Logger;
  private bridgeName: string | undefined;
  /** Helper runs happen one at a time (two writers of one port's rules would race). */
  private queue: Promise<unknown> = Promise.resolve();
  /** Pins asked for while a helper runs go together into the next run. */
  private pending: Array<{ target: PinTarget; resolve: (port: string) => void; reject: (e: Error) => void }> = [];
  private pendingScheduled = false;
  private helper: Promise<string> | undefined;
  private closed = false;

  constructor(options: { docker: Docker; image: string; network: string; namespace: string; log: Logger }) {
    this.docker = options.docker;
    this.image = options.image;
    this.network = options.network;
    this.namespace = options.namespace;
    this.log = options.log;
  }

  /** The Linux bridge behind the sandbox network (shipshape0 by default). */
  async bridge(): Promise<string> {
    if (this.bridgeName) return this.bridgeName;
    const net = (await this.docker.getNetwork(this.network).inspect()) as { Id: string; Options?: Record<string, string> };
    this.bridgeName = net.Options?.["com.docker.network.bridge.name"] || `br-${net.Id.slice(0, 12)}`;
    return this.bridgeName;
  }

  /** Pins one sandbox's port; resolves with the port's name, rejects saying why it could not. */
  pin(target: PinTarget): Promise<string> {
    return new Promise((resolve, reject) => {
      this.pending.push({ target, resolve, reject });
      if (this.pendingScheduled) return;
      this.pendingScheduled = true;
      void this.serial(async () => {
        this.pendingScheduled = false;
        const batch = this.pending.splice(0);
        try {
          const r = await this.syncNow(
            batch.map((b) => b.target),
            { verifyEgress: false },
          );
          for (const b of batch) {
            const port = r.pinned.get(b.target.id);
            if (port) b.resolve(port);
            else b.reject(new Error(r.failed.get(b.target.id) ?? "no answer from the pin helper"));
          }
        } catch (e) {
          for (const b of batch) b.reject(e instanceof Error ? e : new Error(String(e)));
        }
      });
    });
  }

  /**
   * Pins the given sandboxes' ports (those already pinned are left alone), removes the pins of
   * ports that are gone, and, with `verifyEgress`, checks the egress policy in the same helper.
   */
  sync(targets: PinTarget[], options: { verifyEgress: boolean }): ReturnType<DockerNetworkGuard["syncNow"]> {
    return this.serial(() => this.syncNow(targets, options));
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  private async syncNow(targets: PinTarget[], options: { verifyEgress: boolean }): Promise<{
    pinned: Map<string, string>;
    failed: Map<string, string>;
    newlyPinned: string[];
    egressProblems: string[] | undefined;
  }> {
    const bridge = await this.bridge();
    for (const t of targets) {
      // Values from the engine, but they become shell words in the helper: keep them boring.
      if (!macPattern.test(t.mac) || !ipv4Pattern.test(t.ip) || !Number.isInteger(t.pid) || t.pid <= 0) {
        throw new Error(`sandbox ${t.id.slice(0, 12)} has no usable address (mac "${t.mac}", ip "${t.ip}", pid ${t.pid})`);
      }
    }
    const lines = targets.map((t) => `${t.id} ${t.pid} ${t.mac} ${t.ip} ${bridge}`).join("\n");
    const out = await this.runHelper(
      ["bash", "-c", readFileSync(PORT_PINS_SCRIPT, "utf8"), "port-pins", ...(options.verifyEgress ? ["--verify-egress"] : [])],
      [`SHIPSHAPE_PINS=${lines}`, `SHIPSHAPE_BRIDGE=${bridge}`, `SHIPSHAPE_EGRESS_SCRIPT=${readFileSync(EGRESS_POLICY_SCRIPT, "utf8")}`],
    );
    const pinned = new Map<string, string>();
    const failed = new Map<string, string>();
    const newlyPinned: string[] = [];
    const egressLines: string[] = [];
    for (const line of out.split("\n")) {
      const [word, id = "", ...rest] = line.trim().split(" ");
      if (word === "ok" || word === "pinned") {
        pinned.set(id, rest[0] ?? "");
        if (word === "pinned") newlyPinned.push(id);
      } else if (word === "failed") failed.set(id, rest.join(" "));
      else if (word === "egress") egressLines.push([id, ...rest].join(" "));
    }
    for (const t of targets) if (!pinned.has(t.id) && !failed.has(t.id)) failed.set(t.id, `no answer from the pin helper: ${out.slice(-300)}`);
    let egressProblems: string[] | undefined;
    if (options.verifyEgress) {
      const verified = egressLines.some((l) => l.startsWith("egress policy verified"));
      egressProblems = verified
        ? []
        : egressLines.length > 0
          ? egressLines.map((l) => l.replace(/^problem: /, ""))
          : [`the egress policy could not be checked: ${out.slice(-300)}`];
    }
    return { pinned, failed, newlyPinned, egressProblems };
  }

  /** Applies the egress policy with the very command set-up runs (same script, same result). */
  applyEgress(): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn("bash", [EGRESS_POLICY_SCRIPT], {
        env: { ...process.env, SHIPSHAPE_SANDBOX_NETWORK: this.network, SHIPSHAPE_POLICY_IMAGE: this.image },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let output = "";
      child.stdout.on("data", (c: Buffer) => (output += c.toString("utf8")));
      child.stderr.on("data", (c: Buffer) => (output += c.toString("utf8")));
      const timer = setTimeout(() => child.kill("SIGKILL"), HELPER_TIMEOUT_MS);
      child.on("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.on("close", (code) => {
        clearTimeout(timer);
        if (code === 0) resolve();
        else reject(new Error(`egress-policy.sh exited with ${code}: ${output.trim().slice(-500)}`));
      });
    });
  }

  /**
   * Runs a command in this server's helper container (host network and PIDs) and resolves with its
   * output. One long-lived helper, used with `docker exec`: on a busy engine a container start costs
   * seconds, an exec a fraction of that. The helper ends by itself within the hour (it is made
   * again when needed) and is removed when the server closes; one a dead server left is removed
   * by the next server of its namespace.
   */
  private async runHelper(cmd: string[], env: string[]): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      const id = await this.helperId();
      try {
        return await this.execIn(id, cmd, env);
      } catch (e) {
        const status = (e as { statusCode?: number }).statusCode;
        // Gone or stopped (its hour is up, or someone removed it): make a new one, once.
        if (attempt > 0 || (status !== 404 && status !== 409)) throw e;
        this.helper = undefined;
        await this.docker.getContainer(id).remove({ force: true, v: true }).catch(() => {});
      }
    }
  }

  private helperId(): Promise<string> {
    // A check still under way when the server closes must not make a helper nobody removes.
    if (this.closed) return Promise.reject(new Error("the network guard is closed"));
    this.helper ??= this.startHelper().catch((e: unknown) => {
      this.helper = undefined;
      throw e;
    });
    return this.helper;
  }

  private async startHelper(): Promise<string> {
    const leftovers = await this.docker
      .listContainers({ all: true, filters: { label: [`${LABEL.role}=network-guard`, `${GUARD_OF}=${this.namespace}`] } })
      .catch(() => []);
    for (const c of leftovers) await this.docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => {});
    const helper = await this.docker.createContainer({
      Image: this.image,
      Entrypoint: ["sleep", "3600"],
      Cmd: [],
      // Not the namespace label: the helper is the server's, not a sandbox's, and must not count
      // as something a namespace left behind.
      Labels: { [LABEL.role]: "network-guard", [GUARD_OF]: this.namespace },
      HostConfig: {
        NetworkMode: "host",
        // The host's PIDs, to name a sandbox's network namespace by the engine's pid for it.
        PidMode: "host",
        CapDrop: ["ALL"],
        // Firewall rules (NET_ADMIN, NET_RAW for legacy iptables); `ip netns attach` mounts
        // (SYS_ADMIN) another process's namespace (SYS_PTRACE). Nothing of a learner runs here.
        CapAdd: ["NET_ADMIN", "NET_RAW", "SYS_ADMIN", "SYS_PTRACE"],
        SecurityOpt: ["apparmor=unconfined"],
        Memory: 128 * 1024 * 1024,
        PidsLimit: 256,
        AutoRemove: true,
      },
    });
    try {
      await helper.start();
    } catch (e) {
      await helper.remove({ force: true, v: true }).catch(() => {});
      throw e;
    }
    return helper.id;
  }

  private async execIn(id: string, cmd: string[], env: string[]): Promise<string> {
    const started = Date.now();
    const exec = await this.docker.getContainer(id).exec({
      // timeout: a run never hangs the queue behind it.
      Cmd: ["timeout", String(Math.round(HELPER_TIMEOUT_MS / 1000)), ...cmd],
      Env: env,
      AttachStdout: true,
      AttachStderr: true,
    });
    const stream = (await exec.start({ hijack: true, stdin: false })) as unknown as Duplex;
    let output = "";
    const sink = new PassThrough();
    sink.on("data", (c: Buffer) => (output += c.toString("utf8")));
    this.docker.modem.demuxStream(stream, sink, sink);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => {
        stream.once("end", resolve);
        stream.once("close", resolve);
        stream.once("error", () => resolve());
      }),
      new Promise((resolve) => (timer = setTimeout(resolve, HELPER_TIMEOUT_MS + 5_000))),
    ]);
    clearTimeout(timer);
    stream.destroy();
    this.log.debug("network helper ran", { ms: Date.now() - started, lines: output.split("\n").length - 1 });
    return output;
  }

  /** Removes the helper (the server is closing). */
  async close(): Promise<void> {
    this.closed = true;
    const id = await this.helper?.catch(() => undefined);
    this.helper = undefined;
    if (id) await this.docker.getContainer(id).remove({ force: true, v: true }).catch(() => {});
  }
}
