import { DockerRuntime } from "../../sandbox-server/src/runtime/docker-runtime.ts";
import { silentLogger } from "../../sandbox-server/src/log.ts";
import type { SandboxInfo, SandboxRuntime } from "../../sandbox-server/src/runtime/types.ts";
import { testNamespace } from "./namespaces.ts";
import { sandboxImage } from "./server.ts";

/** A runtime of its own namespace, for tests that need sandboxes but no server. */
export function testRuntime(namespace = testNamespace("t")): DockerRuntime {
  return new DockerRuntime({
    image: sandboxImage(),
    network: process.env.SHIPSHAPE_SANDBOX_NETWORK ?? "shipshape-sandboxes",
    namespace,
    runtime: "",
    log: silentLogger,
  });
}

export function freshSandbox(runtime: SandboxRuntime, name: string): Promise<SandboxInfo> {
  return runtime.create({
    sessionId: `${name}-${Math.random().toString(36).slice(2, 8)}`.replace(/[^a-z0-9-]/g, "").slice(0, 40),
    ownerId: "lesson-ci",
    expiresAt: Date.now() + 30 * 60_000,
    limits: { memoryBytes: 1024 ** 3, cpus: 1, pids: 1024, diskBytes: 4 * 1024 ** 3 },
  });
}
