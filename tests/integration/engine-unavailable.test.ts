import Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startApp, type App } from "../../sandbox-server/src/app.ts";
import { loadConfig } from "../../sandbox-server/src/config.ts";
import { silentLogger } from "../../sandbox-server/src/log.ts";
import { DockerRuntime } from "../../sandbox-server/src/runtime/docker-runtime.ts";
import { testEnv } from "../support/server.ts";

// The engine is pointed at a socket where nothing listens, as when dockerd has stopped.
describe("when the Docker engine is unreachable", () => {
  let app: App;

  beforeAll(async () => {
    const env = testEnv();
    const runtime = new DockerRuntime({
      docker: new Docker({ socketPath: "/nonexistent/docker.sock" }),
      image: env.SHIPSHAPE_SANDBOX_IMAGE!,
      network: "shipshape-sandboxes",
      namespace: env.SHIPSHAPE_NAMESPACE!,
      runtime: "",
      log: silentLogger,
    });
    app = await startApp(loadConfig(env), silentLogger, runtime);
  });

  afterAll(async () => {
    await app?.close();
  });

  it("stays up and /healthz says why it is not ready", async () => {
    const res = await fetch(`${app.url}/healthz`);
    expect(res.status).toBe(503);
    const body = (await res.json()) as { ok: boolean; reason: string };
    expect(body.ok).toBe(false);
    expect(body.reason).toMatch(/Docker engine is not answering/);
    // The engine's own error text (socket path, error code) stays in the log.
    expect(body).not.toHaveProperty("detail");
  });

  it("is alive (/livez) but not ready (/readyz), and /readyz names the failing check in words", async () => {
    expect((await fetch(`${app.url}/livez`)).status).toBe(200);
    const res = await fetch(`${app.url}/readyz`);
    expect(res.status).toBe(503);
    const body = (await res.json()) as { ready: boolean; failing: string[]; reason: string; checks: Record<string, unknown> };
    expect(body.ready).toBe(false);
    expect(body.failing).toContain("engine");
    expect(body.reason).toMatch(/Docker engine is not answering/);
    expect(JSON.stringify(body)).not.toMatch(/ECONNREFUSED|ENOENT|\.sock/);
  });

  it("refuses a new sandbox at once with a message the learner understands", async () => {
    const res = await fetch(`${app.url}/api/sessions`, { method: "POST", headers: { origin: app.url, "content-type": "application/json" }, body: "{}" });
    expect(res.status).toBe(503);
    const body = (await res.json()) as { error: string; message: string };
    expect(body.error).toBe("engine_unavailable");
    expect(body.message).toMatch(/sandbox service is unavailable/);
  });
});
