import { spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { chmod, chown, mkdtemp, readdir, readFile, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { ShipshapeError } from "../errors.ts";
import { Capped } from "./docker-runtime.ts";
import { ENGINE_RELAY, probeToolsUser, READ_FILE_SCRIPT, RELAY_REFUSED, withRelayReady } from "./probe-spec.ts";
import type { ExecOptions, ExecResult, SandboxProbe } from "./types.ts";

/**
 * The isolated tier's grading probe (docs/grading.md, "Where grading runs"): the same relay, file
 * reader and tools as the classroom tier's probe container, run from the HOST instead, since LXD
 * has no helper container that could share a sandbox's namespaces.
 *
 * - The engine: the relay (probe-engine-relay.pl) runs on the host, where the inner dockerd is a
 *   process of the host's PID namespace. It connects to /proc/<dockerd>/root/run/docker.sock and
 *   relays only when the kernel says (SO_PEERCRED) that the listener is that very dockerd: a fake
 *   socket, binary or engine in the learner's container is refused, as in the classroom tier.
 * - The tools (`docker`, `curl`, an author's script) are the host's own, never the container's
 *   files, and enter only the sandbox's network namespace (its ports on localhost answer them).
 *   `exec`'s tools run as a user of their own with no capabilities: the learner, root in a user
 *   namespace of the container's, can neither see them (another PID namespace) nor trace them.
 *
 * WARNING: the server must be root on the LXD host (it reads the container's processes in /proc).
 * The relay and the author's script keep SYS_PTRACE and DAC_OVERRIDE only (the classroom probe's
 * root has the same): they look into the sandbox's root through /proc. Never widen that set.
 */

/** Who runs the engine of a sandbox: its inner dockerd as a pid of the host, and its container's first process. */
export interface LxdEngine {
  /** The container's init (tini, images/lxd/init), as LXD reports it. */
  initPid: number;
  /** The inner dockerd: tini's first child (the entrypoint, which execs dockerd). */
  enginePid: number;
}

/**
 * The inner dockerd of the container whose init is `initPid`, found from the host's /proc. tini
 * starts one child, the entrypoint, which execs dockerd; orphans the learner leaves behind are
 * reparented to tini too, but they all started later, so the engine is the child that started
 * first. Nothing the learner controls decides this: only the kernel's process table.
 */
export async function findLxdEngine(instanceName: string, initPid: number, proc = "/proc"): Promise<LxdEngine> {
  // The pid must be this container's (a pid LXD reported a moment ago could be gone, or on a
  // cluster member this server is not): LXD puts each container in its own lxc.payload cgroup.
  const cgroup = await readFile(`${proc}/${initPid}/cgroup`, "utf8").catch(() => "");
  if (!cgroup.includes(`lxc.payload.${instanceName}`)) {
    throw new Error(`process ${initPid} is not the init of ${instanceName} on this host (cgroup: ${cgroup.trim().split("\n")[0] ?? "none"})`);
  }
  let children: number[] = [];
  for (const task of await readdir(`${proc}/${initPid}/task`).catch(() => [] as string[])) {
    const list = await readFile(`${proc}/${initPid}/task/${task}/children`, "utf8").catch(() => "");
    children.push(...list.split(/\s+/).filter(Boolean).map(Number));
  }
  if (children.length === 0) children = await childrenByScan(initPid, proc);
  let first: { pid: number; started: number } | undefined;
  for (const pid of children) {
    const started = await startTime(pid, proc);
    if (started !== undefined && (!first || started < first.started)) first = { pid, started };
  }
  if (!first) throw new Error(`the init of ${instanceName} (process ${initPid}) has no child: its engine is not running`);
  return { initPid, enginePid: first.pid };
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot); the command name before it may hold spaces and parentheses. */
async function startTime(pid: number, proc: string): Promise<number | undefined> {
  const stat = await readFile(`${proc}/${pid}/stat`, "utf8").catch(() => "");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const value = Number(fields[19]);
  return Number.isFinite(value) && stat !== "" ? value : undefined;
}

/** Where the kernel has no /proc/<pid>/task/<tid>/children (CONFIG_PROC_CHILDREN off): every process's parent. */
async function childrenByScan(parent: number, proc: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir(proc)) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`${proc}/${entry}/stat`, "utf8").catch(() => "");
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (ppid === parent) found.push(Number(entry));
  }
  return found;
}

const TOOLS_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** What the relay, the file reader and an author's script keep of root: look into the sandbox through /proc, read its files of any mode. */
const LOOKING_CAPS = "-all,+sys_ptrace,+dac_override,+sys_chroot";

/** Opens the host-side probe of one sandbox; `close()` ends its relay and removes its directory. */
export async function openLxdProbe(sandboxId: string, engine: LxdEngine): Promise<SandboxProbe> {
  if (process.getuid?.() !== 0) {
    throw new ShipshapeError(
      "sandbox_failed",
      "Checking is not available on this server right now. Tell the course's host.",
      "the isolated tier's grading probe runs on the LXD host and needs the server to run as root (it verifies the sandbox's engine through /proc)",
    );
  }
  const exe = await readlink(`/proc/${engine.enginePid}/exe`).catch(() => "");
  if (!/\/dockerd( \(deleted\))?$/.test(exe)) {
    throw new ShipshapeError(
      "sandbox_failed",
      "The Docker engine in your sandbox is not running, so nothing was graded. Start a new sandbox, then check again.",
      `sandbox ${sandboxId}: the first process started by its init is ${exe || "gone"}, not dockerd`,
    );
  }
  const toolsUser = probeToolsUser(randomInt);
  const uid = Number(toolsUser.split(":")[0]);
  // The relay's socket lives in a directory only the tools' user (and root) may enter.
  const dir = await mkdtemp(path.join(tmpdir(), "shipshape-probe-"));
  await chown(dir, uid, uid);
  await chmod(dir, 0o700);
  const socket = path.join(dir, "engine.sock");
  const net = `--net=/proc/${engine.enginePid}/ns/net`;
  // Ends by itself even if the server dies mid-check, like the classroom probe's. A process group
  // of its own, so close() ends the relay itself and not only `timeout` (which would orphan it).
  const relay = spawn("timeout", ["120", "setpriv", `--bounding-set=${LOOKING_CAPS}`, "perl", "-e", ENGINE_RELAY, String(engine.enginePid), socket], {
    stdio: ["ignore", "ignore", "ignore"],
    detached: true,
  });
  relay.on("error", () => {});
  relay.unref();
  const toolsEnv = [TOOLS_PATH, `DOCKER_HOST=unix://${socket}`, "LANG=C.UTF-8", `HOME=${dir}`];
  const asTools = [
    "nsenter",
    net,
    "--",
    "setpriv",
    `--reuid=${uid}`,
    `--regid=${uid}`,
    "--clear-groups",
    "--inh-caps=-all",
    "--bounding-set=-all",
    "--no-new-privs",
    "--",
  ];
  const asRoot = ["nsenter", net, "--", "setpriv", `--bounding-set=${LOOKING_CAPS}`, "--no-new-privs", "--"];
  return {
    exec: async (cmd, options = {}) => {
      const r = await runOnHost([...asTools, ...withRelayReady(cmd, socket)], { ...options, env: [...toolsEnv, ...(options.env ?? [])] }, dir);
      const refused = r.stderr.split("\n").find((l) => l.includes(RELAY_REFUSED));
      if (refused) {
        throw new ShipshapeError(
          "sandbox_failed",
          "The Docker engine socket in your sandbox was replaced, so your engine could not be verified and nothing was graded. Remove what you put at /var/run/docker.sock (or start a new sandbox), then check again.",
          `sandbox ${sandboxId}: ${refused.trim()}`,
        );
      }
      return r;
    },
    authorScript: (cmd, options = {}) => {
      const root = `/proc/${engine.enginePid}/root`;
      return runOnHost(
        [...asRoot, ...withRelayReady(cmd, socket)],
        { ...options, env: [...toolsEnv, `SANDBOX_ROOT=${root}`, `HOME=${root}/root`, ...(options.env ?? [])] },
        "/",
      );
    },
    readFile: async (file, maxBytes) => {
      const r = await runOnHost(
        ["setpriv", `--bounding-set=${LOOKING_CAPS}`, "--no-new-privs", "perl", "-e", READ_FILE_SCRIPT, String(engine.enginePid), file, String(maxBytes)],
        { maxOutputBytes: maxBytes, timeoutMs: 15_000, env: [TOOLS_PATH, "LANG=C.UTF-8"] },
        "/",
      );
      if (r.exitCode === 0) return r.stdout;
      if (r.exitCode === 1) return undefined;
      throw new Error(`reading ${file} in sandbox ${sandboxId}: exit ${r.exitCode}${r.timedOut ? " (timed out)" : ""} ${r.stderr.trim()}`);
    },
    close: async () => {
      try {
        process.kill(-relay.pid!, "SIGKILL");
      } catch {
        /* already gone (its 120 s ran out) */
      }
      await rm(dir, { recursive: true, force: true }).catch(() => {});
    },
  };
}

/** A command on the host with only the environment given, its output capped, killed (its whole group) at the timeout. */
function runOnHost(cmd: string[], options: ExecOptions, cwd: string): Promise<ExecResult> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const maxBytes = options.maxOutputBytes ?? 1024 * 1024;
  const env = Object.fromEntries((options.env ?? []).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
  return new Promise((resolve) => {
    const child = spawn(cmd[0]!, cmd.slice(1), { env, cwd, stdio: ["ignore", "pipe", "pipe"], detached: true });
    const out = new Capped(maxBytes);
    const err = new Capped(maxBytes);
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => err.push(c));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        /* already gone */
      }
    }, timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      resolve({ exitCode: -1, stdout: "", stderr: `the probe could not run ${cmd[0]}: ${e.message}`, timedOut: false, truncated: false });
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ exitCode: timedOut ? -1 : (code ?? -1), stdout: out.text(), stderr: err.text(), timedOut, truncated: out.truncated || err.truncated });
    });
  });
}
