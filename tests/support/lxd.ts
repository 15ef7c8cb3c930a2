import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { LxdRuntime } from "../../sandbox-server/src/runtime/lxd-runtime.ts";
import { silentLogger } from "../../sandbox-server/src/log.ts";
import type { SandboxInfo, SandboxLimits } from "../../sandbox-server/src/runtime/types.ts";
import { testNamespace } from "./namespaces.ts";
import { repoRoot } from "./server.ts";

export const lxdSocket = process.env.SHIPSHAPE_LXD_SOCKET ?? "/var/lib/lxd/unix.socket";
const imageFile = path.join(repoRoot, ".data", "lxd-image");

/** Why the isolated tier cannot be tested here, or undefined when LXD and its sandbox image are set up. */
export function lxdMissing(): string | undefined {
  if (!existsSync(lxdSocket)) return `LXD is not running here (no ${lxdSocket})`;
  if (!process.env.SHIPSHAPE_LXD_IMAGE && !existsSync(imageFile)) return `the sandbox image was never imported into LXD (no ${imageFile})`;
  return undefined;
}

/**
 * Whether the isolated tier's tests may skip: only outside `./shipshape test`, which sets LXD up
 * wherever it can and then requires these tests to run (SHIPSHAPE_REQUIRE_LXD).
 */
export function lxdSkipped(): boolean {
  return lxdMissing() !== undefined && process.env.SHIPSHAPE_REQUIRE_LXD !== "1";
}

/** Printed once by each file that skips, so a skipped run is never mistaken for a passing one. */
export function reportLxdSkip(file: string): void {
  const why = lxdMissing();
  if (why && process.env.SHIPSHAPE_REQUIRE_LXD === "1") {
    throw new Error(`[${file}] the isolated tier is required by ./shipshape test but ${why}.`);
  }
  if (why) {
    process.stderr.write(
      `\n[${file}] SKIPPED: ${why}. Set the isolated tier up with: SHIPSHAPE_TIER=isolated ./shipshape setup\n\n`,
    );
  }
}

export function testLxdRuntime(namespace = testNamespace("t")): LxdRuntime {
  return new LxdRuntime({
    socketPath: lxdSocket,
    image: process.env.SHIPSHAPE_LXD_IMAGE ?? (existsSync(imageFile) ? readFileSync(imageFile, "utf8").trim() : ""),
    network: process.env.SHIPSHAPE_LXD_NETWORK ?? "shipshape-lx0",
    pool: process.env.SHIPSHAPE_LXD_POOL ?? "shipshape",
    namespace,
    log: silentLogger,
  });
}

export const defaultLimits: SandboxLimits = { memoryBytes: 1024 ** 3, cpus: 1, pids: 1024, diskBytes: 4 * 1024 ** 3 };

export function freshLxdSandbox(runtime: LxdRuntime, name: string, limits: Partial<SandboxLimits> = {}): Promise<SandboxInfo> {
  return runtime.create({
    sessionId: `${name}-${Math.random().toString(36).slice(2, 8)}`.replace(/[^a-z0-9-]/g, "").slice(0, 40),
    ownerId: "lxd-test",
    expiresAt: Date.now() + 30 * 60_000,
    limits: { ...defaultLimits, ...limits },
  });
}

/** Every sandbox of the runtime's namespace, removed. */
export async function removeAll(runtime: LxdRuntime): Promise<void> {
  for (const s of await runtime.list().catch(() => [])) await runtime.destroy(s.id).catch(() => {});
}
