/**
 * The kept grading probe (issue 18: one probe per sandbox serves all its checks, through a command
 * server that lives as long as the probe) is as far out of the learner's reach as the probe made
 * per check: none of its processes, the command server included, can be named or traced from the
 * sandbox, and a fake engine put in place after the probe was made is still refused.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../sandbox-server/src/app.ts";
import type { SandboxRuntime } from "../../sandbox-server/src/runtime/types.ts";
import { startTestApp } from "../support/server.ts";
import { openSession, TestTerminal, type Session } from "../support/terminal.ts";
import { FORGED_CONTAINER_ID, startFakeEngine, traceProbeFromSandbox } from "./grading-probe.ts";

let app: App;
let session: Session;
let term: TestTerminal;
let sandboxId: string;

async function inSandbox(id: string, script: string, timeoutMs = 60_000): Promise<string> {
  const r = await app.runtime.exec(id, ["bash", "-c", script], { timeoutMs });
  if (r.timedOut) throw new Error(`timed out after ${timeoutMs} ms:\n${r.stdout}\n${r.stderr}`);
  return `${r.stdout}${r.stderr ? `\n[stderr] ${r.stderr.trim()}` : ""}`.trim();
}

beforeAll(async () => {
  app = await startTestApp();
  session = await openSession(app.url);
  term = new TestTerminal(session);
  await term.ready(60_000);
  sandboxId = (await app.runtime.list()).find((s) => s.sessionId === session.sessionId)!.id;
  await app.runtime.engineReady?.(sandboxId);
});

afterAll(async () => {
  term?.close();
  for (const s of (await app?.runtime.list()) ?? []) await app.runtime.destroy(s.id);
  await app?.close();
});

describe("the kept grading probe", () => {
  it("gives the learner no way to name or ptrace it, its command server included", async () => {
    // The same attempt as for the probe made per check, against the kept one (what the grader uses).
    const kept: SandboxRuntime = Object.create(app.runtime, {
      probe: { value: (id: string) => app.runtime.probe(id, { keep: true }) },
    }) as SandboxRuntime;
    const attempt = await traceProbeFromSandbox(kept, sandboxId, session.sessionId, inSandbox);
    expect(attempt.controlAttached, attempt.evidence).toBe(true);
    expect({ nameable: attempt.nameable, attached: attempt.attached }, attempt.evidence).toEqual({ nameable: [], attached: [] });
  }, 180_000);

  it("refuses a fake engine put in place after the probe was made", async () => {
    // The kept probe exists (the terminal warmed it, the test above used it); now the socket is swapped.
    const setUp = await inSandbox(sandboxId, `${startFakeEngine("/tmp/fake.sock")}
mount --bind /tmp/fake.sock /run/docker.sock
docker ps -a --no-trunc --format '{{.ID}}'`);
    expect(setUp).toContain(FORGED_CONTAINER_ID);
    const res = await fetch(`${app.url}/api/exercises/run-and-stop/check`, { method: "POST", headers: { origin: app.url, cookie: session.cookie } });
    const body = (await res.json()) as { passed: boolean; tasks: Array<{ message: string }> };
    expect(res.status).toBe(200);
    expect(body.passed).toBe(false);
    for (const t of body.tasks) expect(t.message).toMatch(/socket in your sandbox was replaced/);
  }, 120_000);
});
