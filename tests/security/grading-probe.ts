/**
 * What a learner does to forge a grade, shared by the grading-forgery tests and the attack suite:
 * a fake Docker engine put where the grader looks for the real one, and ptrace of the grading
 * probe. Everything here runs inside the learner's own sandbox, as root, as their shell could.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import type { SandboxRuntime } from "../../sandbox-server/src/runtime/types.ts";

/**
 * A fake Docker engine, in Perl (the sandbox has no Python): it answers the API calls a check
 * makes with a forged state in which `run-and-stop` is solved (an exited `first-cache` from
 * redis:7, and an exited busybox container whose log says "Containers are processes"), so a
 * grader that reached it would pass the exercise without the work.
 */
export const FAKE_ENGINE = String.raw`
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
my %json = ($web => ct($web, "first-cache", "redis:7"), $hello => ct($hello, "said", "busybox"));
while (my $c = $srv->accept) {
  my $req = ""; while ($req !~ /\r\n\r\n/) { my $n = sysread($c, $req, 4096, length $req); last unless $n; }
  my ($method, $url) = $req =~ m{^(\S+) (\S+)};
  my ($status, $type, $body) = (404, "application/json", qq({"message":"No such object"}));
  if ($url =~ m{/_ping}) { ($status, $type, $body) = (200, "text/plain", "OK") }
  elsif ($url =~ m{/containers/json}) { $body = "[" . join(",", map { qq({"Id":"$_","Names":["/x"],"Image":"x","State":"exited"}) } sort keys %json) . "]"; $status = 200 }
  elsif ($url =~ m{/containers/(\w+)/json} && $json{$1}) { ($status, $body) = (200, $json{$1}) }
  elsif ($url =~ m{/containers/(\w+)/logs}) { my $m = "Containers are processes\n"; ($status, $type, $body) = (200, "application/vnd.docker.raw-stream", pack("C x3 N", 1, length $m) . $m) }
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

/** Shell lines that start the fake engine listening at `path` (in the sandbox), wait until it answers, and print " <- the fake engine". */
export function startFakeEngine(path: string, prefix = ""): string {
  return String.raw`
cat > /root/fake-engine.pl <<'PERL'
${FAKE_ENGINE}
PERL
${prefix} nohup perl /root/fake-engine.pl ${path} >/tmp/fake-engine.log 2>&1 &
echo $! > /tmp/fake-engine.pid
for i in $(seq 100); do [ -S ${path} ] && break; sleep 0.05; done
curl -s --unix-socket ${path} http://engine/_ping; echo " <- the fake engine at ${path}"`;
}

/** An id the fake engine reports for a container (the learner's `docker ps` through it shows it). */
export const FORGED_CONTAINER_ID = "b".repeat(64);

/** The processes of the classroom tier's probe containers for a session (host pids). */
function probeContainerProcesses(sessionId: string): Array<{ pid: string; args: string }> {
  const containers = execFileSync(
    "docker",
    ["ps", "-q", "--no-trunc", "--filter", `label=org.shipshape.session=${sessionId}`, "--filter", "label=org.shipshape.role=probe"],
    { encoding: "utf8" },
  )
    .split("\n")
    .filter(Boolean);
  return containers.flatMap((c) =>
    execFileSync("docker", ["top", c, "-o", "pid,args"], { encoding: "utf8" })
      .split("\n")
      .slice(1)
      .map((l) => l.trim().match(/^(\d+)\s+(.*)$/))
      .filter((m): m is RegExpMatchArray => m !== null)
      .map((m) => ({ pid: m[1]!, args: m[2]! })),
  );
}

/**
 * The isolated tier's probe runs on the host (lxd-probe.ts): its relay and every tool it runs, found
 * by the probe's private directory or its marker in their command lines.
 */
function hostProbeProcesses(): Array<{ pid: string; args: string }> {
  const found: Array<{ pid: string; args: string }> = [];
  for (const pid of readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
    let args: string;
    try {
      args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
    } catch {
      continue;
    }
    if (args === `sleep ${PROBE_MARKER}` || /shipshape-probe-/.test(args)) found.push({ pid, args });
  }
  return found;
}

/** Something the probe runs while the learner hunts for it, found by this argument. */
const PROBE_MARKER = "8.123";

export interface ProbeTraceAttempt {
  /** Probe processes that have a pid in the sandbox's PID namespace (those the learner can name). */
  nameable: string[];
  /** Lines "attached PID" for probe processes the learner attached to. */
  attached: string[];
  /** The learner's attach to a process of their own worked (the attempt itself is sound). */
  controlAttached: boolean;
  evidence: string;
}

/**
 * Opens a probe on the sandbox, keeps a command running in it, and has the learner try to
 * PTRACE_ATTACH to it: to every process of the probe they can name (found from the host, by PID
 * namespace), and to any process in their view whose command line looks like the probe's.
 */
export async function traceProbeFromSandbox(
  runtime: SandboxRuntime,
  sandboxId: string,
  sessionId: string,
  inSandbox: (id: string, script: string) => Promise<string>,
): Promise<ProbeTraceAttempt> {
  const probe = await runtime.probe(sandboxId);
  try {
    const busy = probe.exec(["sleep", PROBE_MARKER], { timeoutMs: 30_000 });
    // Until the marker runs (a loaded machine can take seconds to start an exec).
    const processes = runtime.name === "lxd" ? hostProbeProcesses : () => probeContainerProcesses(sessionId);
    let seen = processes();
    for (let i = 0; i < 100 && !seen.some((p) => p.args === `sleep ${PROBE_MARKER}`); i++) {
      await new Promise((r) => setTimeout(r, 100));
      seen = processes();
    }
    if (!seen.some((p) => p.args === `sleep ${PROBE_MARKER}`)) throw new Error(`the probe's command never ran: ${JSON.stringify(seen)}`);
    const sandboxPid =
      runtime.name === "lxd"
        ? String((JSON.parse(execFileSync("lxc", ["query", `/1.0/instances/${sandboxId}/state`], { encoding: "utf8" })) as { pid: number }).pid)
        : execFileSync("docker", ["inspect", "--format", "{{.State.Pid}}", sandboxId], { encoding: "utf8" }).trim();
    const sandboxPidNs = readlinkSync(`/proc/${sandboxPid}/ns/pid`);
    const nameable = seen
      .filter((p) => readlinkSync(`/proc/${p.pid}/ns/pid`) === sandboxPidNs)
      .map((p) => readFileSync(`/proc/${p.pid}/status`, "utf8").match(/^NSpid:\s+(.*)$/m)![1]!.trim().split(/\s+/).at(-1)!);
    const out = await inSandbox(
      sandboxId,
      `nohup sleep 60 >/dev/null 2>&1 & mine=$!
sleep 0.2
# Command lines are NUL-separated; this pattern (the probe's marker command, its entry point
# before and after issue 13) does not match this script's own text. (-P takes one pattern only.)
found=$(grep -laP 'sleep\\x00(${PROBE_MARKER.replace(".", "\\.")}|120)|timeout\\x00120\\x00perl' /proc/[0-9]*/cmdline | cut -d/ -f3 | tr '\\n' ' ')
echo "probe-like processes in view: $found"
perl -MPOSIX -e '${PTRACE_ATTACH}' "$mine" $found ${nameable.join(" ")}
kill $mine`,
    );
    // The first attempt is the learner's own process.
    const attempts = out.split("\n").filter((l) => l.startsWith("attached ") || l.startsWith("refused "));
    const controlAttached = /^attached \d+$/.test(attempts[0] ?? "");
    await busy;
    return {
      nameable,
      attached: attempts.slice(1).filter((l) => l.startsWith("attached ")),
      controlAttached,
      evidence: `probe processes (host pid, command): ${seen.map((p) => `${p.pid} ${p.args.slice(0, 40)}`).join("; ")}\nnameable from the sandbox: ${nameable.join(" ") || "none"}\n${out}`,
    };
  } finally {
    await probe.close();
  }
}
