/**
 * Network attacks from inside a classroom-tier sandbox: the rows of docs/security.md whose text
 * names this file. Each probe runs the attack as the learner's root shell could and reports what
 * it observed; the verdict must be the documented one.
 *
 * SAFETY (the engine and the sandbox bridge are shared with other people's sandboxes): addresses
 * are claimed only if they belong to a sandbox this test created, every connection goes to a
 * listener this test started and times out after 2 s, and the egress-policy probe flushes only the
 * chains of a Docker network this test created for itself, never the shared bridge's policy.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { connect, createServer, type Server } from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startApp, type App } from "../../sandbox-server/src/app.ts";
import { loadConfig } from "../../sandbox-server/src/config.ts";
import { createLogger } from "../../sandbox-server/src/log.ts";
import { repoRoot, sandboxImage, startTestApp } from "../support/server.ts";
import { openSession, TestTerminal, type Session } from "../support/terminal.ts";
import { documentedAttacks, pollUntil, securityEnv, sleep, type Verdict } from "./support.ts";

interface Probe {
  verdict: Verdict;
  evidence: string;
}

type Learner = { session: Session; term: TestTerminal; id: string; address: string; mac: string };

let app: App & { env: Record<string, string> };
const terminals: TestTerminal[] = [];
const cleanups: Array<() => Promise<void> | void> = [];
const NETWORK = process.env.SHIPSHAPE_SANDBOX_NETWORK ?? "shipshape-sandboxes";

const sh = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: "utf8", timeout: 30_000 });
/**
 * iptables, ip6tables or ebtables on the host, run like the server runs them: from the sandbox
 * image with the host's network (a host need not have them installed), in the iptables flavour
 * that holds Docker's chains.
 */
const firewall = (tool: "iptables" | "ip6tables" | "ebtables", args: string[]) =>
  sh("docker", [
    "run", "--rm", "--network", "host", "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW",
    "--label", "org.shipshape.role=network-test", "--entrypoint", "bash", sandboxImage(), "-c",
    `tool=$1; shift
if [ "$tool" != ebtables ]; then
  for v in nft legacy; do if iptables-$v -w -n -L DOCKER-USER >/dev/null 2>&1; then tool=$tool-$v; break; fi; done
fi
exec "$tool" "$@"`,
    "firewall", tool, ...args,
  ]);
const bridgeOf = (network: string) =>
  execFileSync("docker", ["network", "inspect", "-f", '{{index .Options "com.docker.network.bridge.name"}}', network], { encoding: "utf8" }).trim();

async function learner(base = app): Promise<Learner> {
  const session = await openSession(base.url);
  const term = new TestTerminal(session);
  terminals.push(term);
  await term.ready(90_000);
  const info = (await base.runtime.list()).find((s) => s.sessionId === session.sessionId);
  if (!info?.address) throw new Error("the learner's sandbox has no address");
  const mac = execFileSync("docker", ["inspect", "-f", `{{(index .NetworkSettings.Networks "${NETWORK}").MacAddress}}`, info.id], { encoding: "utf8" }).trim();
  return { session, term, id: info.id, address: info.address, mac };
}

/** Runs a shell script as root in the sandbox, exactly as the learner's own shell could. */
async function inSandbox(id: string, script: string, timeoutMs = 30_000): Promise<string> {
  const r = await app.runtime.exec(id, ["bash", "-c", script], { timeoutMs });
  if (r.timedOut) throw new Error(`script timed out after ${timeoutMs} ms:\n${r.stdout}\n${r.stderr}`);
  return `${r.stdout}${r.stderr ? `\n[stderr] ${r.stderr.trim()}` : ""}`.trim();
}

/** A TCP service in the sandbox (perl, part of every Debian) that answers `banner`; ends by itself after 3 minutes. */
const listenScript = (host: string, port: number, banner: string) =>
  `setsid timeout 180 perl -MIO::Socket::IP -e '
  my $s = IO::Socket::IP->new(LocalHost => $ARGV[0], LocalPort => $ARGV[1], Listen => 16, ReuseAddr => 1) or die "listen: $@";
  while (my $c = $s->accept) { print $c "HTTP/1.0 200 OK\\r\\ncontent-type: text/plain\\r\\n\\r\\n$ARGV[2]\\n"; close $c }
' '${host}' ${port} '${banner}' >/dev/null 2>&1 < /dev/null &
# Listening before the probe goes on (a busy machine starts perl slowly): a probe must never pass
# because its target was not up yet.
for i in $(seq 150); do (exec 3<>/dev/tcp/127.0.0.1/${port}) 2>/dev/null && { echo listening; exit 0; }; sleep 0.1; done
echo "not listening after 15 s"; exit 1`;

/** A server in this process whose log lines are kept, to check what it tells the operator. */
async function startLoggedApp(env: Record<string, string>): Promise<App & { logLines: string[] }> {
  const logLines: string[] = [];
  const server = await startApp(loadConfig(env), createLogger("info", {}, (line) => logLines.push(line)));
  return Object.assign(server, { logLines });
}

/** What a TCP connection to host:port hears within 2 s (empty when nothing answers). */
function banner(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    let data = "";
    const socket = connect({ host, port, timeout: 2_000 });
    socket.on("data", (c) => (data += c.toString("utf8")));
    socket.on("timeout", () => socket.destroy());
    socket.on("error", () => resolve(data));
    socket.on("close", () => resolve(data));
  });
}

/** The pinned port (ebtables chain SSP-<port>) whose rules name `mac`, read on the host. */
function pinnedPortOf(mac: string): string | undefined {
  const out = firewall("ebtables", ["-t", "nat", "-L"]).stdout ?? "";
  let chain: string | undefined;
  for (const line of out.split("\n")) {
    const m = /^Bridge chain: SSP-([^,]+),/.exec(line);
    if (m) chain = m[1];
    else if (chain && line.trim() === `-s ! ${mac} -j DROP`) return chain;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------

/**
 * A spoofer takes a victim sandbox's IPv4 address (ARP, announced by an ARP request sent from that
 * address) and then its MAC too, while the host keeps asking the victim's address for a page, as
 * the preview proxy does. Open when the spoofer answers any of those requests.
 */
async function arpSpoofing(): Promise<Probe> {
  const [victim, spoofer] = await Promise.all([learner(), learner()]);
  const port = 8080;
  const tag = Math.random().toString(36).slice(2, 8);
  for (const [who, text] of [[victim, "victim"], [spoofer, "spoofer"]] as const) {
    const up = await inSandbox(who.id, listenScript("0.0.0.0", port, `${text}-${tag}`));
    if (!up.startsWith("listening")) throw new Error(`the ${text}'s service did not start: ${up}`);
  }
  const bridge = bridgeOf(NETWORK);
  cleanups.push(() => void sh("ip", ["neigh", "del", victim.address, "dev", bridge]));
  const before = await pollUntil(() => banner(victim.address, port), (b) => b.includes(`victim-${tag}`), 15_000, 500);
  if (!before.includes(`victim-${tag}`)) throw new Error(`the victim's own service did not answer before the attack: "${before}"`);

  const heard: string[] = [];
  const ask = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const b = await banner(victim.address, port);
      heard.push(b.includes(`spoofer-${tag}`) ? "spoofer" : b.includes(`victim-${tag}`) ? "victim" : "nothing");
      await sleep(300);
    }
  };
  // 1. The victim's IP on the spoofer's eth0; an ARP request from that IP (a connection attempt to
  // the gateway with an empty neighbour table) tells the host "the victim's IP is at my MAC".
  const claim = await inSandbox(
    spoofer.id,
    `prefix=$(ip -o -4 addr show dev eth0 | awk '{print $4; exit}' | cut -d/ -f2)
gw=$(ip route | awk '/^default/ {print $3; exit}')
ip addr add ${victim.address}/$prefix dev eth0 2>&1
ip neigh flush dev eth0
( for i in $(seq 25); do ip neigh flush dev eth0; curl -s -m 0.3 --interface ${victim.address} http://$gw:9/ >/dev/null 2>&1; sleep 0.2; done ) >/dev/null 2>&1 &
sleep 0.5; echo "claimed ${victim.address} from $(cat /sys/class/net/eth0/address)"`,
  );
  await ask(6);
  const afterIp = [...heard];
  // 2. And the victim's MAC: the bridge learns it on the spoofer's port from the next frame.
  const clone = await inSandbox(
    spoofer.id,
    `gw=$(ip route | awk '/^default/ {print $3; exit}')
ip link set dev eth0 down; ip link set dev eth0 address ${victim.mac}; ip link set dev eth0 up
ip route replace default via $gw dev eth0 2>/dev/null
( for i in $(seq 25); do curl -s -m 0.3 --interface ${victim.address} http://$gw:9/ >/dev/null 2>&1; sleep 0.2; done ) >/dev/null 2>&1 &
sleep 0.5; echo "eth0 now $(cat /sys/class/net/eth0/address)"`,
  );
  await ask(6);
  const afterMac = heard.slice(afterIp.length);
  const spoofed = heard.filter((h) => h === "spoofer").length;
  const victimSeen = heard.filter((h) => h === "victim").length;
  const pins = `the victim's port is pinned as ${pinnedPortOf(victim.mac) ?? "(no pin)"}, the spoofer's ${pinnedPortOf(spoofer.mac) ?? "(no pin)"}`;
  await endLearner(spoofer.session);
  await endLearner(victim.session);
  return {
    // Contained only when the victim kept answering and the spoofer never did.
    verdict: spoofed > 0 || victimSeen === 0 ? "open" : "contained",
    evidence:
      `${claim}\n${clone}\nthe host asked ${victim.address}:${port} (the victim's) ${heard.length} times: ` +
      `after the IP claim [${afterIp.join(" ")}], after the MAC clone too [${afterMac.join(" ")}]; ${pins}`,
  };
}

/**
 * IPv6 turned back on in a fresh procfs: a link-local connection to a service on the host bound
 * to `::` (through the bridge's own link-local address), and to another sandbox's service.
 */
async function ipv6(): Promise<Probe> {
  const [attacker, other] = await Promise.all([learner(), learner()]);
  const tag = Math.random().toString(36).slice(2, 8);
  const host = await hostListener6(`host6-${tag}`);
  cleanups.push(() => host.close());
  const bridge = bridgeOf(NETWORK);
  const hostLinkLocal = /inet6 (fe80::[0-9a-f:]+)\//.exec(sh("ip", ["-6", "addr", "show", "dev", bridge, "scope", "link"]).stdout ?? "")?.[1];
  const enable6 = `mkdir -p /tmp/.p6 && (mountpoint -q /tmp/.p6 || mount -t proc proc /tmp/.p6)
echo 0 > /tmp/.p6/sys/net/ipv6/conf/all/disable_ipv6; echo 0 > /tmp/.p6/sys/net/ipv6/conf/eth0/disable_ipv6
for i in $(seq 40); do ip -6 addr show dev eth0 scope link | grep -q tentative || break; sleep 0.1; done
ip -6 addr show dev eth0 scope link | awk '/inet6/ {print $2; exit}' | cut -d/ -f1`;
  const otherLinkLocal = (await inSandbox(other.id, enable6)).split("\n")[0]?.trim() ?? "";
  const up = await inSandbox(other.id, listenScript("::", 8081, `sandbox6-${tag}`));
  if (!up.startsWith("listening")) throw new Error(`the other sandbox's IPv6 service did not start: ${up}`);
  const attackerLinkLocal = (await inSandbox(attacker.id, enable6)).split("\n")[0]?.trim() ?? "";
  if (!/^fe80:/.test(attackerLinkLocal) || !/^fe80:/.test(otherLinkLocal)) {
    throw new Error(`IPv6 did not come back on in the sandboxes (attacker "${attackerLinkLocal}", other "${otherLinkLocal}")`);
  }
  const targets = [
    ...(hostLinkLocal ? [`host [${hostLinkLocal}]:${host.port}`] : []),
    `sandbox [${otherLinkLocal}]:8081`,
  ];
  const out = await inSandbox(
    attacker.id,
    `try() { out=$(curl -g -s -m 2 "http://[$2%25eth0]:$3/" 2>/dev/null); case "$out" in *${tag}*) echo "reached $1 $2 port $3";; *) echo "blocked $1 $2 port $3";; esac; }
${hostLinkLocal ? `try host ${hostLinkLocal} ${host.port} &` : ""}
try sandbox ${otherLinkLocal} 8081 &
wait`,
  );
  await endLearner(attacker.session);
  await endLearner(other.session);
  return {
    verdict: /^reached/m.test(out) ? "open" : "contained",
    evidence: `IPv6 back on: attacker ${attackerLinkLocal}, other sandbox ${otherLinkLocal}; host bridge ${hostLinkLocal ?? "has no link-local address"}; tried ${targets.join(", ")}:\n${out}\nhost listener on [::] accepted ${host.connections()} connection(s)`,
  };
}

async function hostListener6(text: string): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  const server: Server = createServer((socket) => {
    connections++;
    socket.on("error", () => {});
    socket.end(`HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\n${text}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port: 0, host: "::" }, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : 0,
    connections: () => connections,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * The egress policy disappears (a firewall reload) while a server runs: on a Docker network this
 * test creates for itself, so the shared bridge's policy is never touched. The server must notice
 * within its check interval and re-apply; with repair off it must refuse new sandboxes and say
 * why on /readyz. Open when any of that does not happen.
 */
async function egressDrift(): Promise<Probe> {
  const suffix = Math.random().toString(36).slice(2, 7);
  const network = `shipshape-nettest-${suffix}`;
  const bridge = `ssnt${suffix}`;
  const chains = { egress: `SS-EGRESS-${bridge}`, input: `SS-INPUT-${bridge}`, v6: `SS-V6-${bridge}` };
  execFileSync("docker", [
    "network", "create", "--driver", "bridge",
    "--opt", `com.docker.network.bridge.name=${bridge}`,
    "--opt", "com.docker.network.bridge.enable_icc=false",
    "--label", "org.shipshape.role=network-test",
    network,
  ]);
  cleanups.push(() => removePolicy(network, bridge, chains));
  const evidence: string[] = [];
  const egressRules = () => firewall("iptables", ["-w", "-S", chains.egress]).stdout ?? "";
  const flush = () => {
    const r = firewall("iptables", ["-w", "-F", chains.egress]);
    if (r.status !== 0) throw new Error(`could not flush ${chains.egress}: ${r.stderr}`);
  };
  const readyz = async (url: string): Promise<{ status: number; body: Record<string, unknown> }> => {
    // A reused keep-alive connection that the server just closed fails once (ECONNRESET): ask again.
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(10_000) });
        return { status: res.status, body: (await res.json().catch(() => ({}))) as Record<string, unknown> };
      } catch (e) {
        if (attempt >= 2) throw e;
      }
    }
  };

  // A server on that network: its start finds no policy there and applies it.
  const env = securityEnv({ SHIPSHAPE_SANDBOX_NETWORK: network, SHIPSHAPE_NETWORK_CHECK_INTERVAL: "2s" });
  const server = await startLoggedApp(env);
  let ok = true;
  try {
    const atStart = await readyz(server.url);
    const applied = egressRules().includes(`-A ${chains.egress} -o ${bridge} -j DROP`);
    evidence.push(`at start: policy ${applied ? "applied" : "MISSING"}, /readyz ${atStart.status} ${JSON.stringify(atStart.body.checks ?? atStart.body)}`);
    ok &&= applied && atStart.status === 200;

    // A firewall reload empties the chain.
    flush();
    const flushedAt = Date.now();
    const back = await pollUntil(() => egressRules(), (r) => r.includes(`-A ${chains.egress} -o ${bridge} -j DROP`), 20_000, 200);
    const restored = back.includes(`-A ${chains.egress} -o ${bridge} -j DROP`);
    const took = Date.now() - flushedAt;
    // /readyz reports the first check that finished after the flush: it says what it re-applied.
    type NetworkCheckJson = { checkedAt?: string; repaired?: string[] };
    const networkOf = (r: { body: Record<string, unknown> }) => (r.body.checks as { network?: NetworkCheckJson } | undefined)?.network;
    const said = await pollUntil(() => readyz(server.url), (r) => Date.parse(networkOf(r)?.checkedAt ?? "") > flushedAt, 20_000, 250);
    const saysRepaired = (networkOf(said)?.repaired ?? []).some((r) => /re-applied the egress policy/.test(r));
    const logged = server.logLines.filter(
      (l) => /egress policy missing or incomplete|sandbox network repaired/.test(l) && Date.parse((JSON.parse(l) as { time: string }).time) >= flushedAt,
    );
    evidence.push(
      `flushed ${chains.egress}: ${restored ? `re-applied after ${took} ms` : "NOT re-applied within 20 s"}; /readyz ${said.status} ${JSON.stringify(networkOf(said))}; ` +
        `log: ${logged.map((l) => (JSON.parse(l) as { msg: string }).msg).join(" | ") || "(nothing)"}`,
    );
    ok &&= restored && saysRepaired && said.status === 200 && logged.length >= 2;
  } finally {
    await server.close();
  }

  // Repair off (an operator who manages the firewall): refuse and say why, then recover.
  const strict = await startLoggedApp({ ...env, SHIPSHAPE_NETWORK_REPAIR: "false" });
  try {
    flush();
    const down = await pollUntil(() => readyz(strict.url), (r) => r.status === 503, 15_000, 250);
    const refused = await fetch(`${strict.url}/api/sessions`, {
      method: "POST",
      headers: { origin: strict.url, "content-type": "application/json" },
      body: "{}",
    });
    const refusal = (await refused.json().catch(() => ({}))) as { error?: string; message?: string };
    evidence.push(`repair off, chain flushed: /readyz ${down.status} ${JSON.stringify(down.body)}; POST /api/sessions ${refused.status} ${JSON.stringify(refusal)}`);
    const told = strict.logLines.some((l) => l.includes("sandbox network isolation NOT verified"));
    evidence.push(`log: ${told ? "says new sandboxes are refused" : "SAYS NOTHING"}`);
    ok &&=
      told &&
      down.status === 503 &&
      JSON.stringify(down.body.failing) === '["network"]' &&
      /egress/i.test(String(down.body.reason)) &&
      refused.status === 503 &&
      /paused/.test(refusal.message ?? "");
    // The operator re-applies by hand; the server notices without a restart.
    execFileSync("bash", [path.join(repoRoot, "sandbox-server/setup/egress-policy.sh")], { env: { ...process.env, SHIPSHAPE_SANDBOX_NETWORK: network } });
    const up = await pollUntil(() => readyz(strict.url), (r) => r.status === 200, 15_000, 250);
    evidence.push(`re-applied by hand: /readyz ${up.status}`);
    ok &&= up.status === 200;
  } finally {
    await strict.close();
  }
  return { verdict: ok ? "contained" : "open", evidence: evidence.join("\n") };
}

/** Removes what the egress-drift probe's own network got: its policy chains (only those) and the network. */
function removePolicy(network: string, bridge: string, chains: { egress: string; input: string; v6: string }): void {
  const drop = (bin: "iptables" | "ip6tables", from: string, chain: string) => {
    while (firewall(bin, ["-w", "-D", from, "-i", bridge, "-j", chain]).status === 0);
  };
  drop("iptables", "DOCKER-USER", chains.egress);
  drop("iptables", "INPUT", chains.input);
  drop("ip6tables", "INPUT", chains.v6);
  drop("ip6tables", "FORWARD", chains.v6);
  for (const [bin, chain] of [["iptables", chains.egress], ["iptables", chains.input], ["ip6tables", chains.v6]] as const) {
    firewall(bin, ["-w", "-F", chain]);
    firewall(bin, ["-w", "-X", chain]);
  }
  sh("docker", ["network", "rm", network]);
}

async function endLearner(session: Session): Promise<void> {
  await fetch(`${app.url}/api/sessions/current`, { method: "DELETE", headers: { origin: app.url, cookie: session.cookie } }).catch(() => {});
}

const probes: Record<string, () => Promise<Probe>> = {
  "arp-spoofing": arpSpoofing,
  ipv6,
  "egress-drift": egressDrift,
};

// ---------------------------------------------------------------------------------------------

const documented = new Map([...documentedAttacks()].filter(([, row]) => row.probedIn === "network.test.ts"));

describe("network attacks from inside a classroom-tier sandbox, as docs/security.md says", () => {
  beforeAll(async () => {
    app = await startTestApp(securityEnv({ HOST: "0.0.0.0", SHIPSHAPE_SANDBOX_MEMORY: "256m", SHIPSHAPE_SANDBOX_DISK: "200m" }));
  });

  afterAll(async () => {
    for (const t of terminals) t.close();
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {});
    for (const s of (await app?.runtime.list().catch(() => [])) ?? []) await app.runtime.destroy(s.id).catch(() => {});
    await app?.close();
  });

  it("documents every network attack probed here, and probes every one documented for this file", () => {
    expect([...documented.keys()].sort()).toEqual(Object.keys(probes).sort());
  });

  for (const [id, row] of documented) {
    it(`${id}: ${row.classroom}`, async () => {
      const probe = probes[id];
      if (!probe) throw new Error(`no probe for ${id}`);
      const result = await probe();
      console.log(`[${id}] ${result.verdict}\n  ${result.evidence.split("\n").join("\n  ")}`);
      expect(result.verdict, `docs/security.md:${row.line} says ${id} is ${row.classroom}. Evidence:\n${result.evidence}`).toBe(row.classroom);
    }, 180_000);
  }

  it("pins a sandbox's port before it is handed out, pins it again after a restart if its rules went, and removes the rules when it goes", async () => {
    const one = await learner();
    const port = pinnedPortOf(one.mac);
    expect(port, "the new sandbox's port has a pin").toBeDefined();
    // The server stops; a firewall flush takes the sandbox's rules while it is down.
    const env = app.env;
    await app.close();
    firewall("ebtables", ["-t", "nat", "-D", "SHIPSHAPE-PORTS", "-i", port!, "-j", `SSP-${port}`]);
    firewall("ebtables", ["-t", "nat", "-F", `SSP-${port}`]);
    firewall("ebtables", ["-t", "nat", "-X", `SSP-${port}`]);
    expect(pinnedPortOf(one.mac)).toBeUndefined();
    app = await startTestApp(env);
    // Pinned again before the restarted server answers anyone (its start awaits the first check).
    expect(pinnedPortOf(one.mac)).toBe(port);
    const jump = firewall("ebtables", ["-t", "nat", "-L", "SHIPSHAPE-PORTS"]).stdout ?? "";
    expect(jump).toContain(`-i ${port} -j SSP-${port}`);
    const readyz = await fetch(`${app.url}/readyz`).then((r) => r.json() as Promise<{ checks: { network: { repaired: string[] } } }>);
    expect(readyz.checks.network.repaired.join(" ")).toMatch(/pinned the network ports of 1 running sandbox/);
    // The sandbox goes: its rules go soon after.
    await app.runtime.destroy(one.id);
    const left = await pollUntil(() => pinnedPortOf(one.mac), (p) => p === undefined, 30_000, 500);
    expect(left).toBeUndefined();
  }, 240_000);

  it("answers /livez always, and /healthz without the engine's error text", async () => {
    expect((await fetch(`${app.url}/livez`)).status).toBe(200);
    const health = (await fetch(`${app.url}/healthz`).then((r) => r.json())) as Record<string, unknown>;
    expect(health.ok).toBe(true);
    expect(health).not.toHaveProperty("detail");
    const ready = await fetch(`${app.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, checks: { engine: { ok: true }, network: { ok: true } } });
  });
});
