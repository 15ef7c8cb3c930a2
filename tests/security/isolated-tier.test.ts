/**
 * Attacks against the isolated tier (unprivileged LXD system containers), run by a learner who is
 * root in their sandbox. The classroom tier's table (docs/security.md, attacks.test.ts) has
 * `kernel-settings` open; here it must be contained. Needs the tier set up:
 *     SHIPSHAPE_TIER=isolated ./shipshape setup
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LxdRuntime } from "../../sandbox-server/src/runtime/lxd-runtime.ts";
import type { SandboxInfo } from "../../sandbox-server/src/runtime/types.ts";
import { freshLxdSandbox, lxdMissing, lxdSkipped, removeAll, reportLxdSkip, testLxdRuntime } from "../support/lxd.ts";
import { documentedAttacks, firewallDrops, hostAddresses, hostEngineId, hostListener } from "./support.ts";

const missing = lxdMissing();
reportLxdSkip("isolated-tier.test.ts");

/**
 * The rows of docs/security.md whose isolated column each file proves, by the attack's id: the
 * tests below start their titles with these ids, and grading-forgery-isolated.test.ts proves the
 * grading rows. A cell the table fills in for the isolated tier must be in this list.
 */
const PROVEN_FOR_ISOLATED = {
  "isolated-tier.test.ts": [
    "kernel-settings",
    "host-block-device",
    "other-sandbox",
    "ipv6",
    "host-services",
    "server-port",
    "arp-spoofing",
    "host-docker-socket",
    "host-files-by-handle",
    "kernel-module",
    "cloud-metadata",
    "cgroup-limits",
    "memory-bomb",
  ],
  "grading-forgery-isolated.test.ts": ["grading-forgery", "probe-privileges"],
};

describe("docs/security.md's isolated column", () => {
  it("claims a result only where a test of the isolated tier proves it", () => {
    const proven = new Set(Object.values(PROVEN_FOR_ISOLATED).flat());
    const claimed = [...documentedAttacks().values()].filter((r) => r.isolated !== "not tested").map((r) => r.id);
    expect(claimed.sort()).toEqual([...proven].sort());
  });
});

/** The host's value of a kernel setting, or undefined where this kernel has none. */
const hostSetting = (file: string) => (existsSync(file) ? readFileSync(file, "utf8") : undefined);

describe.skipIf(lxdSkipped())("isolated tier: attacks by root in an LXD sandbox", () => {
  let runtime: LxdRuntime;
  let attacker: SandboxInfo;
  let victim: SandboxInfo;
  const sh = async (sandbox: SandboxInfo, script: string, timeoutMs = 60_000) => {
    const r = await runtime.exec(sandbox.id, ["bash", "-c", script], { timeoutMs });
    return `${r.stdout}${r.stderr}`;
  };

  beforeAll(async () => {
    runtime = testLxdRuntime();
    [attacker, victim] = await Promise.all([freshLxdSandbox(runtime, "attacker"), freshLxdSandbox(runtime, "victim")]);
  }, 240_000);

  afterAll(async () => {
    await removeAll(runtime);
    await runtime.close();
  }, 120_000);

  it("kernel-settings: a fresh procfs mounts, but host-wide kernel settings cannot be opened for writing", async () => {
    const before = { core: hostSetting("/proc/sys/kernel/core_pattern"), modprobe: hostSetting("/proc/sys/kernel/modprobe") };
    // The same probe as the classroom tier's attack (attacks.test.ts): opened for writing and closed
    // without writing a byte, so even a failure of the tier triggers nothing on the host.
    const out = await sh(
      attacker,
      String.raw`
w() { if [ ! -e "$1" ]; then echo "absent $1"; elif ( exec 3>>"$1" ) 2>/dev/null; then echo "WRITABLE $1"; else echo "refused $1"; fi; }
w /proc/sysrq-trigger; w /proc/sys/kernel/core_pattern; w /proc/sys/kernel/modprobe
mkdir -p /tmp/.ss-proc
if mount -t proc proc /tmp/.ss-proc 2>/dev/null; then
  echo "fresh procfs mounted"
  w /tmp/.ss-proc/sysrq-trigger; w /tmp/.ss-proc/sys/kernel/core_pattern; w /tmp/.ss-proc/sys/kernel/modprobe; w /tmp/.ss-proc/sys/vm/drop_caches
  umount /tmp/.ss-proc
else echo "fresh procfs refused"; fi`,
    );
    // The mount itself is allowed (the sandbox owns its PID namespace): the kernel refuses the files.
    expect(out).toContain("fresh procfs mounted");
    expect(out).toMatch(/refused \/tmp\/\.ss-proc\/sys\/kernel\/core_pattern/);
    expect(out).toMatch(/(refused|absent) \/tmp\/\.ss-proc\/sys\/kernel\/modprobe/);
    expect(out).not.toContain("WRITABLE");
    expect({ core: hostSetting("/proc/sys/kernel/core_pattern"), modprobe: hostSetting("/proc/sys/kernel/modprobe") }).toEqual(before);
  });

  it("host-block-device: the host's disk and the sandboxes' storage pool cannot be opened as devices", async () => {
    const rootDev = execFileSync("stat", ["-c", "%Hd:%Ld", "/"], { encoding: "utf8" }).trim();
    const devices = [rootDev];
    const loop = execFileSync("losetup", ["-j", "/var/lib/lxd/disks/shipshape.img"], { encoding: "utf8" }).split(":")[0]?.trim();
    if (loop) devices.push(execFileSync("stat", ["-c", "%t:%T", loop], { encoding: "utf8" }).trim().split(":").map((h) => parseInt(h, 16)).join(":"));
    for (const dev of devices) {
      const [maj, min] = dev.split(":");
      const out = await sh(
        attacker,
        String.raw`rm -f /tmp/.ss-blk
if mknod /tmp/.ss-blk b ${maj} ${min} 2>/tmp/.ss-err; then echo "mknod allowed"; else echo "mknod refused: $(cat /tmp/.ss-err)"; fi
if [ -e /tmp/.ss-blk ] && dd if=/tmp/.ss-blk of=/dev/null bs=512 count=1 2>/dev/null; then echo "READ the device"; else echo "no read"; fi
rm -f /tmp/.ss-blk`,
      );
      expect(out, `device ${dev}`).not.toContain("READ the device");
      expect(out, `device ${dev}`).toMatch(/mknod refused: .*(Operation not permitted)/);
    }
  });

  it("other-sandbox: a web server in one sandbox answers itself but not a neighbour", async () => {
    // The victim publishes nginx (from the registry mirror) on port 8080 of its own address.
    const up = await sh(victim, "docker run -d -p 8080:80 nginx >/dev/null && for i in $(seq 50); do curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/ && break; sleep 0.2; done", 120_000);
    expect(up).toContain("200");
    const out = await sh(attacker, `curl -s -m 4 -o /dev/null -w '%{http_code}' http://${victim.address}:8080/ || echo " unreachable"`);
    expect(out).toContain("unreachable");
    expect(out).not.toMatch(/^200/);
  }, 180_000);

  it("ipv6: a neighbour that turns IPv6 back on is not reachable over link-local addresses either", async () => {
    // The link-local address appears once duplicate address detection is done (a second or more).
    const enable =
      "sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.eth0.disable_ipv6=0 && for i in $(seq 100); do " +
      "a=$(ip -6 -o addr show dev eth0 scope link -tentative | awk '{print $4}' | cut -d/ -f1); [ -n \"$a\" ] && echo \"$a\" && break; sleep 0.2; done";
    // The listener is in the sandbox that has published nothing yet: the inner dockerd binds a port
    // on IPv6 only when IPv6 was on at its first publish, and the victim published 8080 with it off.
    const [server, client] = [attacker, victim];
    const serverV6 = (await sh(server, enable)).trim();
    const clientV6 = (await sh(client, enable)).trim();
    expect(serverV6).toMatch(/^fe80:/);
    expect(clientV6).toMatch(/^fe80:/);
    // A port the victim publishes now (with IPv6 on) answers on IPv6 inside its own sandbox...
    const self = await sh(
      server,
      `docker run -d -p 8090:80 nginx >/dev/null && for i in $(seq 150); do curl -s -m 2 -g -o /dev/null -w '%{http_code}' 'http://[${serverV6}%eth0]:8090/' && break; sleep 0.2; done`,
      120_000,
    );
    expect(self).toContain("200");
    // ...but not across the bridge, where the host drops every IPv6 frame.
    const across = await sh(client, `curl -s -m 4 -g -o /dev/null -w '%{http_code}' 'http://[${serverV6}%eth0]:8090/'; echo " rc=$?"`);
    expect(across).toMatch(/^000 rc=(7|28)/);
  }, 90_000);

  it("host-services, server-port: nothing listening on the host answers a sandbox, on any of its addresses", async () => {
    const listener = await hostListener("host-secret");
    try {
      const targets = hostAddresses();
      const script = targets.map((a) => `curl -s -m 3 http://${a}:${listener.port}/ || echo "blocked ${a}"`).join("; ");
      const out = await sh(attacker, script);
      expect(out).not.toContain("host-secret");
      for (const a of targets) expect(out).toContain(`blocked ${a}`);
      expect(listener.connections()).toBe(0);
    } finally {
      await listener.close();
    }
  }, 90_000);

  it("arp-spoofing: the registry answers a sandbox's own address, not an address it takes from a neighbour or a forged MAC", async () => {
    const registry = "http://shipshape-registry:5000/v2/";
    const own = await sh(attacker, `curl -s -m 4 -o /dev/null -w '%{http_code}' ${registry}`);
    expect(own).toBe("200");
    // Root in the sandbox can add the victim's address and send from it: LXD's filter drops it.
    const stolen = await sh(
      attacker,
      `ip addr add ${victim.address}/32 dev eth0 && curl -s -m 4 -o /dev/null -w '%{http_code}' --interface ${victim.address} ${registry}; echo " rc=$?"; ip addr del ${victim.address}/32 dev eth0`,
    );
    expect(stolen).toMatch(/^000 rc=(7|28)/);
    // A forged MAC with its own address: dropped too. Then the real MAC again: answered again, so
    // it was the MAC filter that dropped it, not a network the change left broken.
    const forged = await sh(
      attacker,
      String.raw`gw=$(ip -4 route show default | awk '{print $3}'); mac=$(cat /sys/class/net/eth0/address)
setmac() { ip link set eth0 down && ip link set eth0 address "$1" && ip link set eth0 up && ip route replace default via "$gw" dev eth0; }
setmac 02:00:de:ad:be:ef && ip -4 route show default | grep -q "via $gw" && echo "forged mac, route via $gw"
echo "forged: $(curl -s -m 4 -o /dev/null -w '%{http_code}' ${registry}) rc=$?"
setmac "$mac"; sleep 1
echo "restored: $(curl -s -m 8 -o /dev/null -w '%{http_code}' ${registry})"`,
    );
    expect(forged).toMatch(/forged mac, route via \d/);
    expect(forged).toMatch(/forged: 000 rc=(7|28)/);
    expect(forged).toContain("restored: 200");
  }, 90_000);

  it("host-docker-socket: the only engine a sandbox reaches is its own; the host's engine answers on no socket or port", async () => {
    const hostId = hostEngineId();
    const tcp = hostAddresses().flatMap((a) => [`${a}:2375`, `${a}:2376`]);
    const out = await sh(
      attacker,
      String.raw`echo "inner engine $(docker info --format '{{.ID}}')"
for s in $(find / \( -path /proc -o -path /sys -o -path /dev \) -prune -o -type s -print 2>/dev/null); do
  echo "socket $s engine=$(curl -s -m 2 --unix-socket "$s" http://engine/info 2>/dev/null | jq -r '.ID // "none"' 2>/dev/null)"
done
for t in ${tcp.join(" ")}; do (curl -s -m 2 -o /dev/null "http://$t/version" && echo "tcp $t answers" || echo "tcp $t no answer") & done; wait`,
    );
    // Positive control: the sandbox's own engine answers, with an ID of its own.
    expect(out).toMatch(/inner engine [A-Za-z0-9:-]{10,}/);
    expect(out).not.toContain(hostId);
    expect(out).not.toMatch(/ answers$/m);
  }, 90_000);

  it("host-files-by-handle: open_by_handle_at on the filesystem behind /etc/hosts is refused", async () => {
    const out = await sh(
      attacker,
      String.raw`cat > /tmp/.ss-handle.pl <<'PERL'
open(my $fh, "<", "/etc/hosts") or die "open: $!";
my $handle = pack("LlLL", 8, 1, 2, 0); # 8 bytes, FILEID_INO32_GEN, inode 2 (a filesystem's root), generation 0
my $fd = syscall(304, fileno($fh), $handle, 0x10000); # open_by_handle_at(..., O_RDONLY|O_DIRECTORY)
if ($fd < 0) { printf "open_by_handle_at refused: %s\n", $!; exit 0; }
opendir(my $d, "/proc/self/fd/$fd"); my @n = grep { !/^\./ } readdir($d);
printf "OPENED the filesystem root: %d entries\n", scalar(@n);
PERL
perl /tmp/.ss-handle.pl`,
    );
    // EPERM (no CAP_DAC_READ_SEARCH in the initial user namespace) or ENOSYS (LXD's seccomp policy denies the call).
    expect(out).toMatch(/open_by_handle_at refused: (Operation not permitted|Function not implemented)/);
    expect(out).not.toContain("OPENED");
  });

  it("kernel-module: init_module is refused", async () => {
    const out = await sh(
      attacker,
      String.raw`cat > /tmp/.ss-mod.pl <<'PERL'
my $p = ""; my $r = syscall(175, 0, 0, $p); # init_module(NULL, 0, ""): never a module
printf "init_module errno=%d (%s)\n", $!+0, $!;
PERL
perl /tmp/.ss-mod.pl`,
    );
    // EPERM: refused for want of the capability in the initial user namespace (ENOSYS: no module support).
    expect(["1", "38"], out).toContain(/init_module errno=(\d+)/.exec(out)?.[1]);
  });

  it("cloud-metadata: 169.254.169.254 is dropped on the host (the isolated tier's egress rule counts it)", async () => {
    const before = firewallDrops("SHIPSHAPE-LXD-EGRESS", "169.254.0.0/16");
    const out = await sh(attacker, String.raw`code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' http://169.254.169.254/latest/meta-data/); echo "curl exit $? http $code"`);
    const after = firewallDrops("SHIPSHAPE-LXD-EGRESS", "169.254.0.0/16");
    expect(out).toMatch(/http 000/);
    // The drop is the host's rule, not a network that happens to have no metadata service.
    expect(before, "the isolated tier's egress rule for 169.254.0.0/16 exists").toBeTypeOf("number");
    expect(after!).toBeGreaterThan(before!);
  });

  it("cgroup-limits: the memory and process limits cannot be lifted from inside", async () => {
    const hostLimit = (controller: string, file: string) => readFileSync(`/sys/fs/cgroup/${controller}/lxc.payload.${attacker.id}/${file}`, "utf8").trim();
    const limits = () => ({ memory: hostLimit("memory", "memory.limit_in_bytes"), pids: hostLimit("pids", "pids.max") });
    const before = limits();
    // Positive control: the host holds the limits the sandbox was given (freshLxdSandbox's defaults).
    expect(before).toEqual({ memory: String(1024 ** 3), pids: "1024" });
    // Harmless variant (as attacks.test.ts's): the learner LOWERS what it sees as its limits, in the
    // hierarchies it was given and in fresh mounts; had that reached the container's own cgroup on
    // the host, "max" would have too.
    const out = await sh(
      attacker,
      String.raw`for d in /sys/fs/cgroup /tmp/.ss-cg; do
  if [ "$d" = /tmp/.ss-cg ]; then for c in pids memory; do mkdir -p $d/$c; mount -t cgroup -o $c cgroup $d/$c || echo "fresh $c mount refused"; done; fi
  echo 150 > $d/pids/pids.max 2>/dev/null && echo "wrote $d/pids/pids.max=150"
  echo 209715200 > $d/memory/memory.limit_in_bytes 2>/dev/null && echo "wrote $d/memory/memory.limit_in_bytes=200m"
done
for c in pids memory; do umount /tmp/.ss-cg/$c 2>/dev/null; done; true`,
    );
    console.log(`[cgroup-limits] ${out.trim().split("\n").join("; ")}`);
    expect(limits()).toEqual(before);
  });

  it("memory-bomb: a memory bomb, after lifting the limit it can see, is killed at the sandbox's limit; the sandbox lives and the server hears of it", async () => {
    const ooms: string[] = [];
    const stop = runtime.onSandboxEvent((id, event) => {
      if (event.kind === "oom") ooms.push(id);
    });
    try {
      const out = await sh(
        attacker,
        "echo -1 > /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null; head -c 1500m /dev/zero | tail > /dev/null; echo \"bomb exit $?\"",
        120_000,
      );
      const peak = Number(readFileSync(`/sys/fs/cgroup/memory/lxc.payload.${attacker.id}/memory.max_usage_in_bytes`, "utf8"));
      // tail was killed (137), and the container never held more than its 1 GiB.
      expect(out).toMatch(/bomb exit 137/);
      expect(peak).toBeLessThanOrEqual(1024 ** 3 * 1.02);
      expect(await sh(attacker, "echo survived")).toContain("survived");
      // The OOM watch polls the host's cgroup every 2 s: the server tells the learner.
      for (let i = 0; i < 50 && !ooms.includes(attacker.id); i++) await new Promise((r) => setTimeout(r, 200));
      expect(ooms).toContain(attacker.id);
    } finally {
      stop();
    }
  }, 150_000);
});
