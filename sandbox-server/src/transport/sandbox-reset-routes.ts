import { json } from "../common/http.ts";
import { ShipshapeError } from "../errors.ts";
import type { Signer } from "../common/signing.ts";
import type { SessionManager } from "../sessions/session-manager.ts";
import type { SessionLimits } from "../../../contracts/session-api.ts";
import { RateLimiter } from "./rate-limiter.ts";
import type { Routes } from "./http-server.ts";

/**
 * Resets per browser: each one starts a sandbox, so a held-down button or a script must not turn
 * into a stream of container starts. Three at once, then one every 30 s.
 */
export const RESETS_PER_BROWSER = { capacity: 3, refillPerMinute: 2 } as const;

/**
 * `POST /api/sessions/current/reset`: a fresh sandbox for the owner's own session (never one named
 * by the page). The HTTP server has already refused a foreign Origin, as for every POST.
 */
export function sandboxResetRoutes(deps: { sessions: SessionManager; signer: Signer; limits: SessionLimits }): Routes {
  const resets = new RateLimiter(RESETS_PER_BROWSER);
  return {
    "POST /api/sessions/current/reset": async (_req, res, ownerId) => {
      const view = ownerId ? await deps.sessions.current(ownerId) : undefined;
      if (!ownerId || !view) throw new ShipshapeError("not_found", "You have no sandbox to reset yet. Open a lesson to start one.");
      const wait = resets.waitMs(ownerId);
      if (wait > 0) {
        const seconds = Math.max(1, Math.ceil(wait / 1000));
        throw new ShipshapeError(
          "rate_limited",
          `You reset your sandbox ${RESETS_PER_BROWSER.capacity} times in a short while. Wait ${seconds} s and try again.`,
          "rule sandbox_resets",
          { fields: { rule: "sandbox_resets", retryAfterSeconds: seconds } },
        );
      }
      resets.take(ownerId);
      const after = await deps.sessions.resetSandbox(view.sessionId, ownerId);
      json(res, 202, {
        sessionId: after.sessionId,
        token: deps.signer.sessionToken(after.sessionId, after.ownerId),
        expiresAt: new Date(after.expiresAt).toISOString(),
        ...after.status,
        limits: deps.limits,
      });
    },
  };
}
