/**
 * Grading cannot be forged: a learner, root in their sandbox, tries to make Check pass without the
 * work by putting a fake Docker engine where the grader looks for the real one, or by tracing the
 * grading probe. Every attempt here made a check pass before issue 13 (classroom tier) and issue 15
 * (isolated tier); now each must be refused, and honest work must still pass. Run against each
 * tier by grading-forgery.test.ts and grading-forgery-isolated.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../sandbox-server/src/app.ts";
import { startTestApp, testEnv } from "../support/server.ts";
import { openSession, TestTerminal, type Session } from "../support/terminal.ts";
import { FORGED_CONTAINER_ID, startFakeEngine, traceProbeFromSandbox } from "./grading-probe.ts";

/** The attacks below, against a server whose environment `env()` gives (its tier). */
export function describeGradingForgery(tier: string, env: () => Record<string, string> = () => testEnv()): void {
  let app: App;
  const terminals: TestTerminal[] = [];

  interface Learner {
    session: Session;
    id: string;
  }

  async function learner(): Promise<Learner> {
    const session = await openSession(app.url);
    const term = new TestTerminal(session);
    terminals.push(term);
    await term.ready(60_000);
    const info = (await app.runtime.list()).find((s) => s.sessionId === session.sessionId);
    if (!info) throw new Error("the learner has no sandbox");
    // The prompt comes before the inner engine (issue 18); each attack starts from a sandbox
    // whose real engine answered, as a learner's would after their first `docker` command.
    await app.runtime.engineReady?.(info.id);
    return { session, id: info.id };
  }

  /** A shell script run as root in the sandbox, as the learner's own shell could. */
  async function inSandbox(id: string, script: string, timeoutMs = 60_000): Promise<string> {
    const r = await app.runtime.exec(id, ["bash", "-c", script], { timeoutMs });
    if (r.timedOut) throw new Error(`timed out after ${timeoutMs} ms:\n${r.stdout}\n${r.stderr}`);
    return `${r.stdout}${r.stderr ? `\n[stderr] ${r.stderr.trim()}` : ""}`.trim();
  }

  type CheckAnswer = { passed: boolean; tasks: Array<{ taskId: string; passed: boolean; message: string }> };

  async function check(exercise: string, who: Learner): Promise<CheckAnswer & { ms: number }> {
    const started = performance.now();
    const res = await fetch(`${app.url}/api/exercises/${exercise}/check`, { method: "POST", headers: { origin: app.url, cookie: who.session.cookie } });
    const body = (await res.json()) as CheckAnswer;
    expect(res.status, JSON.stringify(body)).toBe(200);
    return { ...body, ms: Math.round(performance.now() - started) };
  }

  const refusal = /engine .*could not be verified|socket in your sandbox was replaced/;

  beforeAll(async () => {
    app = await startTestApp(env());
  });

  afterAll(async () => {
    for (const t of terminals) t.close();
    for (const s of (await app?.runtime.list()) ?? []) await app.runtime.destroy(s.id);
    await app?.close();
  });

  describe(`${tier} tier: grading cannot be forged with a fake engine`, () => {
    it("refuses a fake engine socket bind-mounted over /run/docker.sock", async () => {
      const me = await learner();
      const setUp = await inSandbox(
        me.id,
        `${startFakeEngine("/tmp/fake.sock")}
mount --bind /tmp/fake.sock /run/docker.sock
docker ps -a --no-trunc --format '{{.ID}}'`,
      );
      // Positive control: through the path a check used to connect to, the forged state is what answers.
      expect(setUp).toContain("OK <- the fake engine");
      expect(setUp).toContain(FORGED_CONTAINER_ID);
      const verdict = await check("run-and-stop", me);
      expect(verdict.passed, JSON.stringify(verdict.tasks)).toBe(false);
      for (const t of verdict.tasks) expect(t.message).toMatch(refusal);
    });

    it("refuses a fake engine served from another network and mount namespace", async () => {
      const me = await learner();
      const setUp = await inSandbox(
        me.id,
        `${startFakeEngine("/run/fake.sock", "unshare --net --mount")}
mv /run/docker.sock /run/docker.sock.real && mv /run/fake.sock /run/docker.sock
# The fake's listener lives in another network namespace: the sandbox's own socket list does not show it.
ss -xlp | grep -c fake-engine || true
docker ps -a --no-trunc --format '{{.ID}}'`,
      );
      expect(setUp).toContain("OK <- the fake engine");
      expect(setUp).toContain(FORGED_CONTAINER_ID);
      const verdict = await check("run-and-stop", me);
      expect(verdict.passed, JSON.stringify(verdict.tasks)).toBe(false);
      for (const t of verdict.tasks) expect(t.message).toMatch(refusal);
    });

    it("ignores a docker command the learner replaced with a forger", async () => {
      const me = await learner();
      // The engine's socket stays as it is; every docker on the sandbox's PATH becomes a wrapper that
      // points the real client at a fake engine. A grader that used the sandbox's docker would see
      // the forged state (as the isolated tier's did before issue 15's host-side probe).
      const setUp = await inSandbox(
        me.id,
        String.raw`${startFakeEngine("/root/.fake.sock")}
for d in $(which -a docker | xargs -n1 readlink -f | sort -u); do mv "$d" "$d.real"; printf '#!/bin/sh\nDOCKER_HOST=unix:///root/.fake.sock exec %s "$@"\n' "$d.real" > "$d"; chmod +x "$d"; done
docker ps -a --no-trunc --format '{{.ID}}'`,
      );
      // Positive control: the learner's own docker now shows the forged state.
      expect(setUp).toContain("OK <- the fake engine");
      expect(setUp).toContain(FORGED_CONTAINER_ID);
      const verdict = await check("run-and-stop", me);
      expect(verdict.passed, JSON.stringify(verdict.tasks)).toBe(false);
    });

    it("does not count an engine it cannot reach as an empty one", async () => {
      const me = await learner();
      // Two finished hello-world containers: "no stopped hello-world left" is not done.
      await inSandbox(me.id, "docker run hello-world >/dev/null && docker run hello-world >/dev/null && docker ps -aq | wc -l");
      const honest = await check("tidy-up", me);
      expect(honest.tasks.find((t) => t.taskId === "no-hello-left")?.passed).toBe(false);
      // Hide the engine's socket: `docker ps` fails, which must not read as "no containers".
      await inSandbox(me.id, "mv /run/docker.sock /run/docker.sock.hidden");
      const verdict = await check("tidy-up", me);
      expect(verdict.tasks.find((t) => t.taskId === "no-hello-left"), JSON.stringify(verdict.tasks)).toMatchObject({ passed: false });
      for (const t of verdict.tasks) expect(t.message).toMatch(refusal);
      await inSandbox(me.id, "mv /run/docker.sock.hidden /run/docker.sock");
      const again = await check("tidy-up", me);
      expect(again.tasks.find((t) => t.taskId === "no-hello-left")?.message).toMatch(/still there/);
    }, 300_000);

    it("still passes honest work, in about the time it took before", async () => {
      const me = await learner();
      await inSandbox(me.id, "docker run -d --name first-cache redis:7 >/dev/null && docker stop first-cache >/dev/null && docker run busybox echo Containers are processes >/dev/null", 120_000);
      const times: number[] = [];
      for (let i = 0; i < 3; i++) {
        const verdict = await check("run-and-stop", me);
        expect(verdict.tasks.map((t) => [t.taskId, t.passed])).toEqual([
          ["cache-stopped", true],
          ["busybox-said", true],
        ]);
        times.push(verdict.ms);
      }
      console.log(`run-and-stop check, honest work: ${times.join(", ")} ms`);
    }, 300_000);
  });

  describe(`${tier} tier: grading cannot be forged by tracing the probe`, () => {
    it("gives the learner no way to ptrace the grading probe", async () => {
      const me = await learner();
      const attempt = await traceProbeFromSandbox(app.runtime, me.id, me.session.sessionId, inSandbox);
      // Positive control: the learner's ptrace works on a process of their own.
      expect(attempt.controlAttached, attempt.evidence).toBe(true);
      expect({ nameable: attempt.nameable, attached: attempt.attached }, attempt.evidence).toEqual({ nameable: [], attached: [] });
    });
  });
}
