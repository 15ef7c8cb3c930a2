import type { SqliteStore } from "../../sandbox-server/src/store/store.ts";
import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../sandbox-server/src/app.ts";
import { startTestApp } from "../support/server.ts";
import { openSession, TestTerminal, type Session } from "../support/terminal.ts";

/** Grading through the API, as the Check button does, against a learner's real sandbox. */
describe("grading", () => {
  let app: App;
  let session: Session;
  let term: TestTerminal;

  const check = async (exercise: string, s: Session = session) => {
    const res = await fetch(`${app.url}/api/exercises/${exercise}/check`, { method: "POST", headers: { origin: app.url, cookie: s.cookie } });
    return { status: res.status, body: (await res.json()) as { passed: boolean; tasks: Array<{ taskId: string; passed: boolean; message: string }> } };
  };

  beforeAll(async () => {
    app = await startTestApp();
    session = await openSession(app.url);
    term = new TestTerminal(session);
    await term.ready(60_000);
  });

  afterAll(async () => {
    term?.close();
    for (const s of (await app?.runtime.list()) ?? []) await app.runtime.destroy(s.id);
    await app?.close();
  });

  it("says what is missing on a fresh sandbox", async () => {
    const { status, body } = await check("greet-entrypoint");
    expect(status).toBe(200);
    expect(body.passed).toBe(false);
    expect(body.tasks[0]).toMatchObject({ taskId: "has-entrypoint", passed: false, message: "There is no image called `greet` yet." });
  });

  it("leaves no probe container or volume behind", async () => {
    const sandbox = (await app.runtime.list())[0]!;
    const volumesBefore = execFileSync("docker", ["volume", "ls", "-q"], { encoding: "utf8" }).split("\n");
    // The sandbox's kept probe (the grader's, tests/integration/kept-probe.test.ts) stays; a probe made for one use must go.
    const probes = () =>
      execFileSync("docker", ["ps", "-aq", "--filter", "label=org.shipshape.role=probe", "--filter", `label=org.shipshape.session=${sandbox.sessionId}`], { encoding: "utf8" })
        .split("\n")
        .filter(Boolean);
    const kept = probes();
    const probe = await app.runtime.probe(sandbox.id);
    const id = probes().filter((p) => !kept.includes(p)).join(" ");
    expect(id).toMatch(/^[0-9a-f]{12}$/);
    // The image declares VOLUME /var/lib/docker; the probe covers it with a tmpfs, so no anonymous volume is made for it.
    const mounts = execFileSync("docker", ["inspect", id, "--format", "{{range .Mounts}}{{.Type}}:{{.Name}} {{end}}"], { encoding: "utf8" }).trim();
    expect(mounts).toBe("");
    await probe.close();
    expect(probes()).toEqual(kept);
    const made = execFileSync("docker", ["volume", "ls", "-q"], { encoding: "utf8" }).split("\n").filter((v) => v.includes(sandbox.sessionId) && !volumesBefore.includes(v));
    expect(made).toEqual([]);
  });

  it("is not fooled by a replaced docker binary", async () => {
    // A fake `docker` that claims every image exists with an ENTRYPOINT and prints the greetings.
    await term.run(
      `cp /usr/bin/docker /root/docker.real && printf '#!/bin/sh\\ncase "$*" in *inspect*) echo "[{\\"Id\\":\\"x\\",\\"Config\\":{\\"Entrypoint\\":[\\"echo\\"]}}]";; *Pavlos*) echo Hello Pavlos;; *) echo Hello world;; esac\\n' > /usr/bin/docker && chmod +x /usr/bin/docker && docker image inspect greet`,
    );
    const { body } = await check("greet-entrypoint");
    expect(body.tasks.map((t) => t.passed)).toEqual([false, false, false]);
    await term.run("cp /root/docker.real /usr/bin/docker");
  });

  it("is not fooled by files faked where the engine keeps volumes", async () => {
    await term.run("mkdir -p /var/lib/docker/volumes/notes/_data && echo 'buy milk' > /var/lib/docker/volumes/notes/_data/todo.txt");
    const { body } = await check("volume-keeps-data");
    expect(body.tasks[0]).toMatchObject({ passed: false, message: "There is no volume called `notes` yet." });
  });

  it("refuses to grade through a daemon socket that is not the sandbox's engine", async () => {
    await term.run(
      "mv /var/run/docker.sock /var/run/docker.sock.real && (perl -MIO::Socket::UNIX -e 'my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Local => \"/var/run/docker.sock\", Listen => 5) or die $!; sleep 60' &) && sleep 0.5 && ls -l /var/run/docker.sock",
    );
    const { body } = await check("run-and-stop");
    expect(body.passed).toBe(false);
    for (const t of body.tasks) expect(t.message).toMatch(/socket in your sandbox was replaced/);
    await term.run("pkill -f IO::Socket::UNIX; rm -f /var/run/docker.sock; mv /var/run/docker.sock.real /var/run/docker.sock");
  });

  it("passes real work, stores it server-side, and shows it as progress after a reload", async () => {
    await term.run("docker run -d --name first-cache redis:7 && docker stop first-cache && docker run busybox echo Containers are processes", 120_000);
    const { body } = await check("run-and-stop");
    expect(body.tasks.map((t) => [t.taskId, t.passed])).toEqual([
      ["cache-stopped", true],
      ["busybox-said", true],
    ]);
    const progress = await fetch(`${app.url}/api/progress`, { headers: { cookie: session.cookie } });
    const json = (await progress.json()) as { exercises: Array<{ exerciseId: string; passed: boolean }> };
    expect(json.exercises.find((e) => e.exerciseId === "run-and-stop")?.passed).toBe(true);
    expect(json.exercises.find((e) => e.exerciseId === "greet-entrypoint")?.passed).toBe(false);
    const row = (app.store as SqliteStore).db.prepare("SELECT COUNT(*) AS n FROM results WHERE exercise_id = 'run-and-stop' AND passed = 1").get() as { n: number };
    expect(row.n).toBe(2);
  });

  it("offers no way for a browser to report its own pass", async () => {
    for (const [method, path] of [
      ["POST", "/api/progress"],
      ["PUT", "/api/exercises/run-and-stop/check"],
      ["POST", "/api/results"],
    ] as const) {
      const res = await fetch(`${app.url}${path}`, {
        method,
        headers: { origin: app.url, cookie: session.cookie, "content-type": "application/json" },
        body: JSON.stringify({ exerciseId: "greet-entrypoint", passed: true }),
      });
      expect([404, 405]).toContain(res.status);
    }
    const other = await openSession(app.url);
    const mine = await fetch(`${app.url}/api/progress`, { headers: { cookie: other.cookie } });
    const json = (await mine.json()) as { exercises: Array<{ passed: boolean }> };
    expect(json.exercises.every((e) => !e.passed)).toBe(true);
  });
});
