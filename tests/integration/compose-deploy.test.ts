import { execFile } from "node:child_process";
import { createServer } from "node:net";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { removeNamespaces, testNamespace } from "../support/namespaces.ts";
import { repoRoot } from "../support/server.ts";
import { openSession, TestTerminal } from "../support/terminal.ts";

const run = promisify(execFile);

/**
 * docs/deploy/compose.yaml brought up for real with Debian's docker-compose: the server image built
 * from this checkout, Caddy in front, and a learner driving a lesson's terminal through Caddy.
 * The images build once (minutes) and are cached after; the test owns its project and namespace.
 */
describe("the Compose deployment (docs/deploy/compose.yaml)", () => {
  const project = `shipshape${testNamespace("t").toLowerCase()}`;
  const namespace = testNamespace("t");
  let env: Record<string, string>;
  let base: string;
  let term: TestTerminal | undefined;
  let upLog = "";

  const compose = (args: string[], timeout: number) =>
    run("docker-compose", ["-p", project, "-f", path.join(repoRoot, "docs/deploy/compose.yaml"), ...args], {
      env: { ...process.env, ...env },
      timeout,
      maxBuffer: 64 * 1024 * 1024,
    });

  beforeAll(async () => {
    const [serverPort, proxyPort] = [await freePort(), await freePort()];
    base = `http://localhost:${proxyPort}`;
    env = {
      SHIPSHAPE_PORT: String(serverPort),
      SHIPSHAPE_SITE: base,
      SHIPSHAPE_PREVIEWS: `http://*.localhost:${proxyPort}`,
      SHIPSHAPE_PUBLIC_URL: base,
      SHIPSHAPE_NAMESPACE: namespace,
      SHIPSHAPE_WARM_POOL: "0",
    };
    const up = await compose(["up", "-d", "--build"], 900_000).catch((e: { stdout?: string; stderr?: string }) => {
      throw new Error(`docker-compose up failed:\n${(e.stdout ?? "") + (e.stderr ?? "")}`.slice(-4000));
    });
    upLog = up.stdout + up.stderr;
    for (let i = 0; i < 240; i++) {
      if (await fetch(`${base}/healthz`).then((r) => r.ok, () => false)) return;
      await new Promise((r) => setTimeout(r, 500));
    }
    const logs = await compose(["logs", "--no-color", "--tail", "40", "server"], 30_000).then((r) => r.stdout, () => "");
    throw new Error(`the deployment did not answer through Caddy (port ${proxyPort}, server ${serverPort}) in 2 minutes:\n${upLog.slice(-1000)}\n${logs}`);
  }, 1_000_000);

  afterAll(async () => {
    term?.close();
    await compose(["down", "-v", "--remove-orphans", "-t", "20"], 120_000).catch(() => {});
    removeNamespaces((ns) => ns === namespace);
  }, 180_000);

  it("serves a lesson through Caddy", async () => {
    const res = await fetch(`${base}/lessons/first-containers/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('data-testid="terminal"');
  });

  it("gives a learner a shell whose Docker engine runs the lesson's first container", async () => {
    const session = await openSession(base);
    term = new TestTerminal(session);
    await term.ready(120_000);
    const out = await term.run("docker run --rm hello-world", 90_000);
    expect(out).toContain("Hello from Docker");
  }, 240_000);
});

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
