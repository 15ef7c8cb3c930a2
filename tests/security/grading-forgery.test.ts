/**
 * Grading cannot be forged: a learner, root in their sandbox, tries to make Check pass without the
 * work by putting a fake Docker engine where the grader looks for the real one, or by tracing the
 * grading probe. Every attempt here made a check pass before issue 13; now each must be refused,
 * and honest work must still pass.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, readlinkSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../sandbox-server/src/app.ts";
import { startTestApp } from "../support/server.ts";
import { openSession, TestTerminal, type Session } from "../support/terminal.ts";

/**
 * A fake Docker engine, in Perl (the sandbox has no Python): it answers the API calls a check
 * makes with a forged state in which `run-and-stop` is solved (an exited `web` from nginx, an
 * exited hello-world container whose log says hello) and `tidy-up` too (no hello-world left).
 */
const FAKE_ENGINE = String.raw`
use strict; use IO::Socket::UNIX;
$SIG{PIPE} = "IGNORE"; # a client that hangs up must not end the fake
my $path = shift; unlink $path;
my $srv = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Local => $path, Listen => 64) or die "listen $path: $!";
my $web = "a" x 64; my $hello = "b" x 64; my $img = "sha256:" . ("1" x 64);
sub ct { my ($id, $name, $image) = @_;
  qq({"Id":"$id","Name":"/$name","Image":"$img","Created":"2026-01-01T00:00:00Z","Path":"x","Args":[],) .
  qq("Config":{"Image":"$image","Env":[],"Labels":{},"Tty":false},) .
  qq("State":{"Status":"exited","Running":false,"ExitCode":0,"OOMKilled":false},) .
  qq("HostConfig":{"PortBindings":{},"AutoRemove":false,"Memory":0},"NetworkSettings":{"Networks":{"bridge":{}}},"Mounts":[]}) }
my %json = ($web => ct($web, "web", "nginx"), $hello => ct($hello, "hello", "hello-world"));
while (my $c = $srv->accept) {
  my $req = ""; while ($req !~ /\r\n\r\n/) { my $n = sysread($c, $req, 4096, length $req); last unless $n; }
  my ($method, $url) = $req =~ m{^(\S+) (\S+)};
  my ($status, $type, $body) = (404, "application/json", qq({"message":"No such object"}));
  if ($url =~ m{/_ping}) { ($status, $type, $body) = (200, "text/plain", "OK") }
  elsif ($url =~ m{/containers/json}) { $body = "[" . join(",", map { qq({"Id":"$_","Names":["/x"],"Image":"x","State":"exited"}) } sort keys %json) . "]"; $status = 200 }
  elsif ($url =~ m{/containers/(\w+)/json} && $json{$1}) { ($status, $body) = (200, $json{$1}) }
  elsif ($url =~ m{/containers/(\w+)/logs}) { my $m = "Hello from Docker!\n"; ($status, $type, $body) = (200, "application/vnd.docker.raw-stream", pack("C x3 N", 1, length $m) . $m) }
  $body = "" if $method eq "HEAD";
  print $c "HTTP/1.1 $status X\r\nApi-Version: 1.41\r\nOstype: linux\r\nContent-Type: $type\r\nContent-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body";
  close $c;
}`;

/**
 * PTRACE_ATTACH (then detach) to each pid given, as a learner would without gdb or strace:
 * prints "attached PID" or "refused PID: reason".
 */
const PTRACE_ATTACH = String.raw`
my %nr = (x86_64 => 101, aarch64 => 117); my $sys = $nr{(POSIX::uname())[4]} or die "unknown architecture";
for my $pid (@ARGV) {
  if (syscall($sys, 16, $pid + 0, 0, 0) == 0) { waitpid($pid, 0x40000000); syscall($sys, 17, $pid + 0, 0, 0); print "attached $pid\n" }
  else { print "refused $pid: $!\n" }
}`;

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

/** Starts the fake engine listening at `path` (in the sandbox) and waits until it answers. */
function startFakeEngine(path: string, prefix = ""): string {
  return String.raw`
cat > /root/fake-engine.pl <<'PERL'
${FAKE_ENGINE}
PERL
${prefix} nohup perl /root/fake-engine.pl ${path} >/tmp/fake-engine.log 2>&1 &
for i in $(seq 100); do [ -S ${path} ] && break; sleep 0.05; done
curl -s --unix-socket ${path} http://engine/_ping; echo " <- the fake engine at ${path}"`;
}

const refusal = /engine .*could not be verified|socket in your sandbox was replaced/;

beforeAll(async () => {
  app = await startTestApp();
});

afterAll(async () => {
  for (const t of terminals) t.close();
  for (const s of (await app?.runtime.list()) ?? []) await app.runtime.destroy(s.id);
  await app?.close();
});

describe("grading cannot be forged with a fake engine", () => {
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
    expect(setUp).toContain("b".repeat(64));
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
    expect(setUp).toContain("b".repeat(64));
    const verdict = await check("run-and-stop", me);
    expect(verdict.passed, JSON.stringify(verdict.tasks)).toBe(false);
    for (const t of verdict.tasks) expect(t.message).toMatch(refusal);
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
  });

  it("still passes honest work, in about the time it took before", async () => {
    const me = await learner();
    await inSandbox(me.id, "docker run -d --name web nginx >/dev/null && docker stop web >/dev/null && docker run hello-world >/dev/null", 120_000);
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const verdict = await check("run-and-stop", me);
      expect(verdict.tasks.map((t) => [t.taskId, t.passed])).toEqual([
        ["web-stopped", true],
        ["hello-ran", true],
      ]);
      times.push(verdict.ms);
    }
    console.log(`run-and-stop check, honest work: ${times.join(", ")} ms`);
  });
});

describe("grading cannot be forged by tracing the probe", () => {
  it("gives the learner no way to ptrace the grading probe", async () => {
    const me = await learner();
    const probe = await app.runtime.probe(me.id);
    try {
      // Something running in the probe while the learner looks, as during a check.
      const busy = probe.exec(["sleep", "8"], { timeoutMs: 20_000 });
      await new Promise((r) => setTimeout(r, 1_500));
      const session = me.session.sessionId;
      const probeContainers = execFileSync(
        "docker",
        ["ps", "-q", "--no-trunc", "--filter", `label=org.shipshape.session=${session}`, "--filter", "label=org.shipshape.role=probe"],
        { encoding: "utf8" },
      )
        .split("\n")
        .filter(Boolean);
      expect(probeContainers.length).toBeGreaterThan(0);
      // Host pids of every process of the probe, and, for those in the sandbox's PID namespace,
      // the pid the learner sees them by.
      const sandboxPid = execFileSync("docker", ["inspect", "--format", "{{.State.Pid}}", me.id], { encoding: "utf8" }).trim();
      const sandboxPidNs = readlinkSync(`/proc/${sandboxPid}/ns/pid`);
      const hostPids = probeContainers.flatMap((c) =>
        execFileSync("docker", ["top", c, "-o", "pid"], { encoding: "utf8" })
          .split("\n")
          .slice(1)
          .map((l) => l.trim())
          .filter((l) => /^\d+$/.test(l)),
      );
      expect(hostPids.length, "the probe runs processes").toBeGreaterThan(0);
      const visible = hostPids
        .filter((p) => readlinkSync(`/proc/${p}/ns/pid`) === sandboxPidNs)
        .map((p) => readFileSync(`/proc/${p}/status`, "utf8").match(/^NSpid:\s+(.*)$/m)![1]!.trim().split(/\s+/).at(-1)!);
      // The learner's own attempt: a process of theirs as a positive control (attaching works),
      // then every probe process they can name.
      const out = await inSandbox(
        me.id,
        `nohup sleep 60 >/dev/null 2>&1 & mine=$!
sleep 0.2
perl -MPOSIX -e '${PTRACE_ATTACH}' "$mine" ${visible.join(" ")}
kill $mine`,
      );
      const control = out.split("\n")[0] ?? "";
      expect(control, out).toMatch(/^attached \d+$/);
      const attachedToProbe = out.split("\n").slice(1).filter((l) => l.startsWith("attached"));
      expect({ probeProcessesTheLearnerCanName: visible, attachedToProbe }, out).toEqual({ probeProcessesTheLearnerCanName: [], attachedToProbe: [] });
      await busy;
    } finally {
      await probe.close();
    }
  });
});
