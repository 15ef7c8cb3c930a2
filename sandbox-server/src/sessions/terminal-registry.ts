import { ShipshapeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ServerMetrics } from "../metrics.ts";
import type { SandboxRuntime } from "../runtime/types.ts";
import { CloseCode } from "../../../contracts/close-codes.ts";
import type { LiveSession } from "./live-session.ts";
import type { SessionPolicy } from "./session-manager.ts";
import { sandboxGoneMessage } from "./session-messages.ts";
import { TerminalHub } from "./terminal-hub.ts";

/** Distinct named shells (terminals) one sandbox may have. */
export const MAX_SHELLS_PER_SANDBOX = 16;

/**
 * The named shells of one session: finds the hub by name or creates it (bounded), and removes it
 * when its shell dies, closing its sockets with the code that says whether reconnecting helps.
 */
export async function startedShell(
  live: LiveSession,
  sandboxId: string,
  name: string,
  size: { cols: number; rows: number },
  deps: { runtime: SandboxRuntime; log: Logger; metrics: ServerMetrics; policy: SessionPolicy },
): Promise<TerminalHub> {
  let hub = live.hubs.get(name);
  if (!hub && live.hubs.size >= MAX_SHELLS_PER_SANDBOX) {
    // Each name is a shell in the sandbox and a screen mirror here: bounded, and said so.
    throw new ShipshapeError(
      "limit_reached",
      `This sandbox already has ${MAX_SHELLS_PER_SANDBOX} shells, the most it may have. Use one of them, or start a new sandbox.`,
      `shell names: ${[...live.hubs.keys()].join(",")}`,
    );
  }
  if (!hub) {
    hub = new TerminalHub({
      name,
      sandboxId,
      runtime: deps.runtime,
      log: deps.log.child({ sessionId: live.record.id, sandboxId }),
      metrics: deps.metrics,
      redrawOnStart: live.reattached,
      ...size,
    });
    const created = hub;
    hub.onDead = (reason) => {
      live.hubs.delete(name);
      if (reason === "engine unreachable") {
        // Not known to be gone: with the engine's live-restore it is still running. The page
        // retries (4503 is not final) and finds the same shell, or hears that it stopped.
        created.dispose(CloseCode.engineUnavailable, "the Docker engine is not answering");
        return;
      }
      created.dispose(CloseCode.sandboxGone, sandboxGoneMessage(reason, deps.policy));
    };
    live.hubs.set(name, hub);
  }
  try {
    await hub.start();
  } catch (e) {
    live.hubs.delete(name);
    hub.dispose(CloseCode.serverError, "shell failed");
    throw e;
  }
  return hub;
}
