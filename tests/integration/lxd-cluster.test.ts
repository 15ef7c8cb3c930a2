/**
 * Sandboxes on a real two-member LXD cluster (tests/support/lxd-cluster.sh: two LXD daemons on this
 * machine, each with its own database, certificates and storage pool, joined over HTTPS with a
 * token). A real server talks to the cluster through one member's socket; LXD's scheduler places
 * the learners' sandboxes. Then one member dies: its learners hear it in words and get a new
 * sandbox on the other member, while the other learners' shells carry on.
 */
import { execFileSync } from "node:child_process";
import { request } from "node:http";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CloseCode } from "../../contracts/close-codes.ts";
import { silentLogger } from "../../sandbox-server/src/log.ts";
import { LxdRuntime } from "../../sandbox-server/src/runtime/lxd-runtime.ts";
import type { SandboxInfo } from "../../sandbox-server/src/runtime/types.ts";
import { defaultLimits, lxdSkipped, reportLxdSkip } from "../support/lxd.ts";
import { lxdImage, repoRoot, startTestApp, testEnv } from "../support/server.ts";
import { openSession, TestTerminal, type Session } from "../support/terminal.ts";

reportLxdSkip("lxd-cluster.test.ts");

const script = path.join(repoRoot, "tests/support/lxd-cluster.sh");
const clusterDir = process.env.SHIPSHAPE_LXD_CLUSTER_DIR ?? "/var/lib/shipshape-lxd-cluster";
const memberSocket = (m: string) => `${clusterDir}/${m}/unix.socket`;
const cluster = (...args: string[]) => execFileSync(script, args, { encoding: "utf8", timeout: 300_000, stdio: ["ignore", "pipe", "pipe"] });

/**
 * True when a cluster from an earlier run answers (its member m2 may still be coming back from that
 * run's stop): it is reused, and left with both members up.
 */
function clusterAnswers(): boolean {
  try {
    return /^m1,/m.test(cluster("status"));
  } catch {
    return false;
  }
}

/** The cluster's REST API, read as an operator would (every member's instances, not only ours). */
function lxdApi<T>(path: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: memberSocket("m1"), path }, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString("utf8")));
      res.on("end", () => resolve((JSON.parse(body) as { metadata: T }).metadata));
    });
    req.on("error", reject);
    req.end();
  });
}

function clusterRuntime(namespace: string, target?: string): LxdRuntime {
  return new LxdRuntime({ socketPath: memberSocket("m1"), image: lxdImage(), network: "shipshape-lx0", pool: "shipshape", namespace, target, log: silentLogger });
}

interface Learner {
  session: Session;
  terminal: TestTerminal;
  sandbox: SandboxInfo;
}

/**
 * What the page does when its terminal closes: a 4503 (engine not answering) is not final, so it
 * connects again until it hears a final word. Returns that final close.
 */
async function finalClose(learner: Learner, timeoutMs: number): Promise<{ code: number; reason: string }> {
  const deadline = Date.now() + timeoutMs;
  let t = learner.terminal;
  for (;;) {
    const closed = await t.waitForClose(Math.max(1_000, deadline - Date.now()));
    if (closed.code !== CloseCode.engineUnavailable || Date.now() > deadline) return closed;
    await new Promise((r) => setTimeout(r, 1_000));
    t = new TestTerminal(learner.session);
  }
}

describe.skipIf(lxdSkipped())("sandboxes on an LXD cluster of two members", () => {
  let madeCluster = false;
  let app: Awaited<ReturnType<typeof startTestApp>>;
  let base: string;
  let runtime: LxdRuntime;
  const learners: Learner[] = [];

  beforeAll(async () => {
    madeCluster = !clusterAnswers();
    cluster("up");
    const env = testEnv({
      SHIPSHAPE_TIER: "isolated",
      SHIPSHAPE_LXD_SOCKET: memberSocket("m1"),
      SHIPSHAPE_LXD_IMAGE: lxdImage(),
      SHIPSHAPE_LXD_NETWORK: "shipshape-lx0",
      SHIPSHAPE_LXD_POOL: "shipshape",
      SHIPSHAPE_SANDBOX_MEMORY: "512m",
    });
    app = await startTestApp(env);
    base = app.url;
    runtime = clusterRuntime(env.SHIPSHAPE_NAMESPACE!);
    // Four learners, two at a time (as a class trickles in): LXD's scheduler puts each new
    // instance on the member with the fewest.
    for (let i = 0; i < 4; i += 2) {
      await Promise.all(
        [0, 1].map(async () => {
          const session = await openSession(base);
          const terminal = new TestTerminal(session);
          await terminal.ready(120_000);
          await terminal.run("echo ready", 60_000);
          learners.push({ session, terminal, sandbox: undefined as unknown as SandboxInfo });
        }),
      );
    }
    const listed = await runtime.list();
    for (const l of learners) l.sandbox = listed.find((s) => s.sessionId === l.session.sessionId)!;
  }, 420_000);

  afterAll(async () => {
    for (const l of learners) l.terminal.close();
    await app?.close();
    if (madeCluster) {
      cluster("down");
    } else {
      // Reused: leave it as found, with both members up and none of our sandboxes.
      cluster("start-member", "m2");
      for (const s of (await runtime?.list().catch(() => [])) ?? []) await runtime.destroy(s.id).catch(() => {});
    }
    await runtime?.close();
  }, 300_000);

  it("places learners' sandboxes on both members by LXD's own scheduler, and records each one's member", () => {
    const members = learners.map((l) => l.sandbox?.member);
    // LXD puts a new instance on the member with the fewest; two started at the same moment may see
    // the same counts, so the split is not always two and two, but both members get learners.
    expect(members.filter((m) => m === "m1").length, members.join(",")).toBeGreaterThanOrEqual(1);
    expect(members.filter((m) => m === "m2").length, members.join(",")).toBeGreaterThanOrEqual(1);
    expect(members.every((m) => m === "m1" || m === "m2")).toBe(true);
  });

  it("puts every sandbox on the member an instructor pinned (SHIPSHAPE_LXD_TARGET), even where the scheduler would not", async () => {
    const onMember = async () => {
      const all = await lxdApi<{ location: string }[]>("/1.0/instances?recursion=1");
      return (m: string) => all.filter((i) => i.location === m).length;
    };
    // Pinned to the member holding more instances, twice: at least the second time the scheduler
    // (fewest instances first) would have chosen the other member, so only the pin puts it there.
    const count = await onMember();
    const busier = count("m1") >= count("m2") ? "m1" : "m2";
    // A namespace of its own: the server's reaper would take a sandbox of its namespace without a session.
    const pinned = clusterRuntime(`${runtime["profile"].namespace}pin`, busier);
    try {
      for (let i = 0; i < 2; i++) {
        const s = await pinned.create({ sessionId: `pin${i}${Date.now().toString(36)}`, ownerId: "pin", expiresAt: Date.now() + 600_000, limits: defaultLimits });
        expect(s.member).toBe(busier);
        expect((await pinned.exec(s.id, ["docker", "version", "--format", "{{.Server.Os}}"])).stdout.trim()).toBe("linux");
      }
      const after = await onMember();
      expect(after(busier)).toBeGreaterThan(after(busier === "m1" ? "m2" : "m1"));
    } finally {
      for (const s of await pinned.list()) await pinned.destroy(s.id);
      await pinned.close();
    }
  }, 180_000);

  it("when a member stops: its learners are told in words and get a new sandbox on the other; the others' shells carry on", async () => {
    const onM2 = learners.filter((l) => l.sandbox.member === "m2");
    const onM1 = learners.filter((l) => l.sandbox.member === "m1");
    cluster("stop-member", "m2");

    for (const l of onM2) {
      const closed = await finalClose(l, 60_000);
      expect(closed.code).toBe(CloseCode.sandboxGone);
      expect(closed.reason).toMatch(/The machine your sandbox ran on stopped/);
    }
    // The same browser presses "Start a new one" (the page asks for a fresh session): LXD places it
    // on the member still up.
    for (const l of onM2) {
      const again = await openSession(base, l.session.cookie, { fresh: true });
      expect(again.sessionId).not.toBe(l.session.sessionId);
      const t = new TestTerminal(again);
      await t.ready(120_000);
      expect(await t.run("echo new-$((6*7))", 60_000)).toContain("new-42");
      const info = (await runtime.list()).find((s) => s.sessionId === again.sessionId);
      expect(info?.member).toBe("m1");
      t.close();
    }
    // The learners on m1 never lost their shell: same socket, same shell, still answering.
    for (const l of onM1) {
      expect(l.terminal.closed).toBeUndefined();
      expect(await l.terminal.run("echo still-$((40+2))", 30_000)).toContain("still-42");
    }
  }, 300_000);
});
