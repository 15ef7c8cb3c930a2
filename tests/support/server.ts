import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startApp, type App } from "../../sandbox-server/src/app.ts";
import { loadConfig } from "../../sandbox-server/src/config.ts";
import { createLogger, silentLogger } from "../../sandbox-server/src/log.ts";
import { testNamespace } from "./namespaces.ts";

export const repoRoot = path.resolve(import.meta.dirname, "../..");

/** The sandbox image set-up built (it writes the tag to .data/sandbox-image). */
export function sandboxImage(): string {
  const file = path.join(repoRoot, ".data", "sandbox-image");
  return process.env.SHIPSHAPE_SANDBOX_IMAGE ?? (existsSync(file) ? readFileSync(file, "utf8").trim() : "shipshape/sandbox:latest");
}

/** The LXD image alias set-up imported for the isolated tier (it writes it to .data/lxd-image). */
export function lxdImage(): string {
  const file = path.join(repoRoot, ".data", "lxd-image");
  return process.env.SHIPSHAPE_LXD_IMAGE ?? (existsSync(file) ? readFileSync(file, "utf8").trim() : "");
}

/** Environment for a server of its own: a fresh data dir and a label namespace nobody else reaps. */
export function testEnv(overrides: Record<string, string> = {}): Record<string, string> {
  const dataDir = mkdtempSync(path.join(tmpdir(), "shipshape-test-"));
  return {
    PORT: "0",
    HOST: "127.0.0.1",
    SHIPSHAPE_DATA_DIR: dataDir,
    SHIPSHAPE_SITE_DIR: path.join(repoRoot, "dist"),
    SHIPSHAPE_CONTENT_DIR: path.join(repoRoot, "content"),
    SHIPSHAPE_SANDBOX_IMAGE: sandboxImage(),
    SHIPSHAPE_NAMESPACE: testNamespace("t"),
    SHIPSHAPE_LOG_LEVEL: "error",
    // Tests count sandboxes; a pool would add some. The pool has its own test.
    SHIPSHAPE_WARM_POOL: "0",
    ...(process.env.SHIPSHAPE_SANDBOX_NETWORK ? { SHIPSHAPE_SANDBOX_NETWORK: process.env.SHIPSHAPE_SANDBOX_NETWORK } : {}),
    // The suites run on the classroom tier, whatever the server's default (auto) would pick here;
    // the isolated tier has files of its own (isolated-tier, grading-forgery-isolated, lxd-runtime,
    // tier-selection). SHIPSHAPE_TIER=isolated runs these same tests on LXD sandboxes instead.
    ...(process.env.SHIPSHAPE_TIER
      ? { SHIPSHAPE_TIER: process.env.SHIPSHAPE_TIER, SHIPSHAPE_LXD_IMAGE: lxdImage() }
      : { SHIPSHAPE_TIER: "classroom" }),
    ...overrides,
  };
}

/** Starts a real server in this process on a free port. */
export async function startTestApp(env: Record<string, string> = testEnv()): Promise<App & { env: Record<string, string> }> {
  const log = process.env.SHIPSHAPE_TEST_LOGS ? createLogger("debug") : silentLogger;
  const app = await startApp(loadConfig(env), log);
  return Object.assign(app, { env });
}
