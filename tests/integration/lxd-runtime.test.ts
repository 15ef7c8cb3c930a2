/**
 * The isolated tier against the real LXD of this machine (set up by SHIPSHAPE_TIER=isolated ./shipshape setup):
 * sandboxes are unprivileged LXD system containers running the same inner dockerd as the classroom tier's.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import type { Duplex } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LxdRuntime } from "../../sandbox-server/src/runtime/lxd-runtime.ts";
import type { SandboxInfo } from "../../sandbox-server/src/runtime/types.ts";
import { freshLxdSandbox, lxdMissing, lxdSkipped, removeAll, reportLxdSkip, testLxdRuntime } from "../support/lxd.ts";

const missing = lxdMissing();
reportLxdSkip("lxd-runtime.test.ts");

/** Collects a terminal's output and waits for a pattern in what arrived since `from`. */
function screen(stream: Duplex) {
  let text = "";
  stream.on("data", (d: Buffer) => (text += d.toString("utf8")));
  return {
    get text() {
      return text;
    },
    async waitFor(pattern: RegExp, from = 0, timeoutMs = 15_000): Promise<string> {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const m = pattern.exec(text.slice(from));
        if (m) return m[0];
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`no ${pattern} in the terminal within ${timeoutMs} ms; it showed:\n${text.slice(from).slice(-800)}`);
    },
  };
}

const lxc = (...args: string[]) => execFileSync("lxc", args, { encoding: "utf8", env: { ...process.env, LXD_SOCKET: process.env.SHIPSHAPE_LXD_SOCKET ?? "/var/lib/lxd/unix.socket" } });
const hostCgroup = (controller: string, name: string, file: string) => {
  const p = `/sys/fs/cgroup/${controller}/lxc.payload.${name}/${file}`;
  if (!existsSync(p)) throw new Error(`the host has no ${p}: where does LXD put the container's cgroup here?`);
  return readFileSync(p, "utf8").trim();
};

describe.skipIf(lxdSkipped())("isolated tier: LXD sandboxes", () => {
  let runtime: LxdRuntime;
  let sandbox: SandboxInfo;

  beforeAll(async () => {
    runtime = testLxdRuntime();
    await runtime.ping();
    sandbox = await freshLxdSandbox(runtime, "main", { memoryBytes: 768 * 1024 ** 2, pids: 700, cpus: 0.5 });
  }, 180_000);

  afterAll(async () => {
    await removeAll(runtime);
    await runtime.close();
  }, 120_000);

  it("gives a shell prompt that survives detaching, and follows the terminal's size", async () => {
    const first = await runtime.shell(sandbox.id, { terminal: "main", cols: 100, rows: 30 });
    const s1 = screen(first.stream);
    await s1.waitFor(/sandbox\S*:\S*# $/);
    first.stream.write("export MARK=lxd-$((6*7)); stty size\r");
    await s1.waitFor(/30 100/);
    first.close();

    // A reload or a server restart attaches again: the same shell, with what was set in it.
    const again = await runtime.shell(sandbox.id, { terminal: "main", cols: 100, rows: 30 });
    const s2 = screen(again.stream);
    await again.resize(132, 43);
    const from = s2.text.length;
    again.stream.write("echo mark=$MARK; stty size\r");
    await s2.waitFor(/mark=lxd-42/, from);
    await s2.waitFor(/43 132/, from);
    again.close();
  });

  it("runs `docker run` inside, with an image from the registry mirror", async () => {
    const r = await runtime.exec(sandbox.id, ["sh", "-c", "docker run --rm busybox:1.35 echo hello from an inner container && docker info --format '{{.Driver}}'"], {
      timeoutMs: 120_000,
    });
    expect(r.stderr + r.stdout).toContain("hello from an inner container");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain("overlay2");
  }, 150_000);

  it("grades from the host: the probe reads the sandbox's engine and files, and leaves no process behind", async () => {
    await runtime.exec(sandbox.id, ["sh", "-c", "echo graded > /root/probe-mark.txt"]);
    const relays = () =>
      readdirSync("/proc")
        .filter((e) => /^\d+$/.test(e))
        .filter((pid) => {
          try {
            return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("/shipshape-probe-");
          } catch {
            return false;
          }
        });
    const before = relays().length;
    const probe = await runtime.probe(sandbox.id);
    const version = await probe.exec(["docker", "version", "--format", "{{.Server.Os}}"]);
    expect(version.stdout.trim(), version.stderr).toBe("linux");
    expect(await probe.readFile("/root/probe-mark.txt", 100)).toBe("graded\n");
    expect(relays().length).toBeGreaterThan(before);
    await probe.close();
    await new Promise((r) => setTimeout(r, 500));
    expect(relays().length).toBe(before);
  });

  it("runs commands with their exit code, their stderr apart, and stops one at its timeout", async () => {
    const r = await runtime.exec(sandbox.id, ["sh", "-c", "echo out; echo err >&2; exit 3"]);
    expect(r, JSON.stringify(r)).toMatchObject({ exitCode: 3, stdout: "out\n", stderr: "err\n", timedOut: false });
    const started = Date.now();
    const slow = await runtime.exec(sandbox.id, ["sleep", "30"], { timeoutMs: 1_000 });
    expect(slow.timedOut).toBe(true);
    expect(Date.now() - started).toBeLessThan(10_000);
    const capped = await runtime.exec(sandbox.id, ["sh", "-c", "head -c 100000 /dev/zero"], { maxOutputBytes: 1000 });
    expect(capped.stdout.length).toBe(1000);
    expect(capped.truncated).toBe(true);
  });

  it("holds the sandbox to its memory, process and CPU limits (the container's cgroup on the host)", async () => {
    expect(Number(hostCgroup("memory", sandbox.name, "memory.limit_in_bytes"))).toBe(768 * 1024 ** 2);
    expect(hostCgroup("pids", sandbox.name, "pids.max")).toBe("700");
    expect(hostCgroup("cpu", sandbox.name, "cpu.cfs_quota_us")).toBe("50000");
    expect(hostCgroup("cpu", sandbox.name, "cpu.cfs_period_us")).toBe("100000");
    // The limit is felt inside: 1,000 sleeping processes started at once do not all start (the
    // shell stops at the first fork the kernel refuses), and the host's counter shows the refusals.
    const refusedBefore = Number(/max (\d+)/.exec(hostCgroup("pids", sandbox.name, "pids.events"))?.[1] ?? 0);
    const bomb = runtime.exec(sandbox.id, ["sh", "-c", "n=0; while [ $n -lt 1000 ]; do sleep 15 >/dev/null 2>&1 & n=$((n+1)); done"], {
      timeoutMs: 60_000,
    });
    let most = 0;
    for (const until = Date.now() + 10_000; Date.now() < until; ) {
      most = Math.max(most, Number(hostCgroup("pids", sandbox.name, "pids.current")));
      if (most >= 690) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await bomb;
    expect(most).toBeGreaterThan(600);
    expect(most).toBeLessThanOrEqual(700);
    expect(Number(/max (\d+)/.exec(hostCgroup("pids", sandbox.name, "pids.events"))?.[1])).toBeGreaterThan(refusedBefore);
    // ...and it recovers once they end (tini, PID 1, reaps what an exec leaves behind).
    const deadline = Date.now() + 40_000;
    while (Number(hostCgroup("pids", sandbox.name, "pids.current")) > 100 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
    expect((await runtime.exec(sandbox.id, ["sh", "-c", "sleep 1 & echo started"])).stdout).toBe("started\n");
    const usage = await runtime.usage(sandbox.id);
    expect(usage.memoryBytes).toBeGreaterThan(0);
    expect(usage.memoryBytes).toBeLessThanOrEqual(768 * 1024 ** 2);
  }, 90_000);

  it("is found again by a restarted server, with its session, owner, expiry and address", async () => {
    const restarted = testLxdRuntime(runtime["profile"].namespace);
    const listed = await restarted.list();
    const found = listed.find((s) => s.id === sandbox.id);
    expect(found).toMatchObject({ sessionId: sandbox.sessionId, ownerId: "lxd-test", running: true });
    expect(found!.expiresAt).toBe(sandbox.expiresAt);
    expect(found!.address).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    // The address in LXD's books is the one the sandbox actually uses.
    const r = await runtime.exec(sandbox.id, ["ip", "-4", "-o", "addr", "show", "eth0"]);
    expect(r.stdout, JSON.stringify(r)).toContain(`inet ${found!.address}/`);
    // Sandboxes of another namespace are not ours.
    expect((await testLxdRuntime("someoneelse").list()).map((s) => s.id)).not.toContain(sandbox.id);
    await restarted.close();
  });

  it("enforces a real disk quota on the whole sandbox", async () => {
    const small = await freshLxdSandbox(runtime, "disk", { diskBytes: 300 * 1024 ** 2 });
    try {
      const r = await runtime.exec(small.id, ["sh", "-c", "dd if=/dev/zero of=/root/fill bs=1M count=450 conv=fsync 2>&1; echo rc=$?"], {
        timeoutMs: 120_000,
      });
      expect(r.stdout).toMatch(/quota exceeded|No space left/i);
      expect(r.stdout).not.toContain("rc=0");
      const usage = await runtime.usage(small.id, { disk: true });
      // What the learner wrote counts (LXD reports the disk's own, unshared, bytes).
      expect(usage.diskBytes).toBeGreaterThan(200 * 1024 ** 2);
    } finally {
      await runtime.destroy(small.id);
    }
  }, 180_000);

  it("tells the server when a sandbox stops under it (killed from the host)", async () => {
    // Listening before the sandbox exists: the event stream is connected by the time it is killed.
    const events: { id: string; kind: string }[] = [];
    const off = runtime.onSandboxEvent((id, event) => events.push({ id, kind: event.kind }));
    const victim = await freshLxdSandbox(runtime, "killed");
    try {
      lxc("stop", "--force", victim.name);
      const deadline = Date.now() + 30_000;
      while (!events.some((e) => e.id === victim.id) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(events).toContainEqual({ id: victim.id, kind: "stopped" });
      expect(await runtime.inspect(victim.id)).toMatchObject({ running: false, address: undefined });
    } finally {
      off();
      await runtime.destroy(victim.id);
    }
  }, 180_000);

  it("leaves nothing behind when destroyed: no instance, no storage volume; destroying twice is fine", async () => {
    const gone = await freshLxdSandbox(runtime, "gone");
    expect(lxc("list", "--format", "csv", "-c", "n")).toContain(gone.name);
    await runtime.destroy(gone.id);
    await runtime.destroy(gone.id);
    expect(await runtime.inspect(gone.id)).toBeNull();
    expect(lxc("list", "--format", "csv", "-c", "n")).not.toContain(gone.name);
    expect(lxc("storage", "volume", "list", process.env.SHIPSHAPE_LXD_POOL ?? "shipshape", "--format", "csv")).not.toContain(gone.name);
    await expect(runtime.exec(gone.id, ["true"])).rejects.toMatchObject({ code: "sandbox_gone" });
  }, 120_000);
});
