import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { findLxdEngine } from "../../../sandbox-server/src/runtime/lxd-probe.ts";

/** A /proc of our own: the container's init, its children and their start times. */
function fakeProc(init: { pid: number; cgroup: string; children: Array<{ pid: number; comm: string; started: number }>; childrenFile?: boolean }): string {
  const proc = mkdtempSync(path.join(tmpdir(), "fake-proc-"));
  const dir = (pid: number) => path.join(proc, String(pid));
  mkdirSync(path.join(dir(init.pid), "task", String(init.pid)), { recursive: true });
  writeFileSync(path.join(dir(init.pid), "cgroup"), init.cgroup);
  writeFileSync(path.join(dir(init.pid), "stat"), `${init.pid} (docker-init) S 1 ${init.pid} ${init.pid} 0 -1 ${"0 ".repeat(13)}100 0\n`);
  if (init.childrenFile !== false) writeFileSync(path.join(dir(init.pid), "task", String(init.pid), "children"), init.children.map((c) => c.pid).join(" ") + " ");
  for (const c of init.children) {
    mkdirSync(dir(c.pid), { recursive: true });
    // Fields after the command: state, ppid, pgrp, session, tty, tpgid, flags, minflt, cminflt,
    // majflt, cmajflt, utime, stime, cutime, cstime, priority, nice, threads, itrealvalue, starttime.
    writeFileSync(path.join(dir(c.pid), "stat"), `${c.pid} (${c.comm}) S ${init.pid} 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 ${c.started} 0 0\n`);
  }
  return proc;
}

const cgroup = "12:memory:/lxc.payload.shipshape-t-abc\n1:name=systemd:/lxc.payload.shipshape-t-abc/init.scope\n";

describe("finding the inner dockerd of an LXD sandbox from the host", () => {
  it("takes init's first child, not an orphan the learner left to init later (even one named dockerd)", async () => {
    const proc = fakeProc({
      pid: 500,
      cgroup,
      children: [
        { pid: 900, comm: "dockerd", started: 9000 },
        { pid: 510, comm: "dockerd", started: 120 },
        { pid: 700, comm: "perl) S 1 (x", started: 50_000 },
      ],
    });
    expect(await findLxdEngine("shipshape-t-abc", 500, proc)).toEqual({ initPid: 500, enginePid: 510 });
  });

  it("finds the children by scanning /proc where the kernel has no children file", async () => {
    const proc = fakeProc({ pid: 500, cgroup, children: [{ pid: 520, comm: "dockerd", started: 130 }], childrenFile: false });
    expect(await findLxdEngine("shipshape-t-abc", 500, proc)).toEqual({ initPid: 500, enginePid: 520 });
  });

  it("refuses a pid that is not this container's init (another container, or gone)", async () => {
    const proc = fakeProc({ pid: 500, cgroup, children: [{ pid: 510, comm: "dockerd", started: 120 }] });
    await expect(findLxdEngine("shipshape-t-other", 500, proc)).rejects.toThrow(/not the init of shipshape-t-other/);
    await expect(findLxdEngine("shipshape-t-abc", 501, proc)).rejects.toThrow(/not the init/);
  });

  it("says so when init has no child (the engine is not running)", async () => {
    const proc = fakeProc({ pid: 500, cgroup, children: [], childrenFile: true });
    await expect(findLxdEngine("shipshape-t-abc", 500, proc)).rejects.toThrow(/has no child/);
  });
});
