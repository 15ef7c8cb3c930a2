import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../sandbox-server/src/app.ts";
import { repoRoot, startTestApp, testEnv } from "../support/server.ts";
import { openSession, TestTerminal } from "../support/terminal.ts";

/**
 * The reverse-proxy examples in docs/deploy, driven for real with Debian's Caddy and nginx: the
 * site, the session API and a terminal WebSocket through each. The files are the documented ones;
 * the test only swaps TLS and the host names for a loopback port.
 */
const deployDir = path.join(repoRoot, "docs/deploy");

interface Proxy {
  name: string;
  start(dir: string, listenPort: number, upstreamPort: number): ChildProcess;
}

const caddy: Proxy = {
  name: "Caddy",
  start(dir, listenPort, upstreamPort) {
    return spawn("caddy", ["run", "--config", path.join(deployDir, "Caddyfile"), "--adapter", "caddyfile"], {
      env: {
        ...process.env,
        HOME: dir,
        XDG_DATA_HOME: dir,
        XDG_CONFIG_HOME: dir,
        SHIPSHAPE_SITE: `http://localhost:${listenPort}`,
        SHIPSHAPE_PREVIEWS: `http://*.localhost:${listenPort}`,
        SHIPSHAPE_UPSTREAM: `127.0.0.1:${upstreamPort}`,
        SHIPSHAPE_CADDY_ADMIN: "off",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
  },
};

const nginx: Proxy = {
  name: "nginx",
  start(dir, listenPort, upstreamPort) {
    const example = readFileSync(path.join(deployDir, "nginx.conf"), "utf8");
    // The TLS server block, on plain HTTP at a loopback port; the redirect block is left out.
    const tlsBlock = example.slice(0, example.lastIndexOf("server {"))
      .replace(/^\s*listen 443 ssl;\n\s*listen \[::\]:443 ssl;\n\s*http2 on;/m, `    listen 127.0.0.1:${listenPort};\n    listen [::1]:${listenPort};`)
      .replace(/^\s*ssl_certificate.*\n/gm, "")
      .replace("server_name course.example.org *.preview.example.org;", "server_name localhost *.localhost;")
      .replaceAll("127.0.0.1:4321", `127.0.0.1:${upstreamPort}`);
    expect(tlsBlock).toContain(`proxy_pass http://127.0.0.1:${upstreamPort};`);
    const conf = path.join(dir, "nginx.conf");
    writeFileSync(
      conf,
      `daemon off;\npid ${dir}/nginx.pid;\nerror_log stderr warn;\nevents {}\nhttp {\n` +
        `access_log off;\nclient_body_temp_path ${dir}/body;\nproxy_temp_path ${dir}/proxy;\n` +
        `fastcgi_temp_path ${dir}/f;\nuwsgi_temp_path ${dir}/u;\nscgi_temp_path ${dir}/s;\n${tlsBlock}\n}\n`,
    );
    return spawn(existsSync("/usr/sbin/nginx") ? "/usr/sbin/nginx" : "nginx", ["-p", dir, "-c", conf], { stdio: ["ignore", "pipe", "pipe"] });
  },
};

for (const proxy of [caddy, nginx]) {
  describe(`behind ${proxy.name} (docs/deploy)`, () => {
    let app: App;
    let child: ChildProcess | undefined;
    let dir: string;
    let base: string;
    let proxyLog = "";
    let term: TestTerminal | undefined;

    beforeAll(async () => {
      const listenPort = await freePort();
      base = `http://localhost:${listenPort}`;
      app = await startTestApp(testEnv({ SHIPSHAPE_PUBLIC_URL: base }));
      dir = mkdtempSync(path.join(tmpdir(), `shipshape-${proxy.name.toLowerCase()}-`));
      child = proxy.start(dir, listenPort, app.port);
      child.stdout?.on("data", (d: Buffer) => (proxyLog += d.toString()));
      child.stderr?.on("data", (d: Buffer) => (proxyLog += d.toString()));
      // Bounded wait until the proxy answers for the site.
      for (let i = 0; i < 100; i++) {
        const ok = await fetch(`${base}/healthz`).then((r) => r.ok, () => false);
        if (ok) return;
        if (child.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`${proxy.name} did not come up: ${proxyLog.slice(-2000)}`);
    });

    afterAll(async () => {
      term?.close();
      child?.kill("SIGTERM");
      for (const s of (await app?.runtime.list()) ?? []) await app.runtime.destroy(s.id);
      await app?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it("serves the site and the lessons", async () => {
      const res = await fetch(`${base}/playground/`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('data-testid="terminal"');
    });

    it("opens a session and carries a terminal WebSocket both ways", async () => {
      const session = await openSession(base);
      term = new TestTerminal(session);
      await term.ready(90_000);
      const out = await term.run("echo through-the-$((6*7))-proxy", 30_000);
      expect(out).toContain("through-the-42-proxy");
    });

    it("still refuses a page of another origin", async () => {
      const res = await fetch(`${base}/api/sessions`, {
        method: "POST",
        headers: { origin: "http://evil.example", "content-type": "application/json" },
        body: "{}",
      });
      expect(res.status).toBe(403);
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}
