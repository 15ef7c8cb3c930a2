import type { SandboxFile, SandboxFileWritten } from "../../../contracts/session-api.ts";
import { ShipshapeError } from "../errors.ts";
import type { SandboxRuntime } from "../runtime/types.ts";
import type { SessionManager } from "./session-manager.ts";

/**
 * Places a lesson's file (a `<File>` block) in the learner's own sandbox: the sandbox is the one
 * the owner holds, never one the request names.
 */
export class SandboxFiles {
  private readonly sessions: Pick<SessionManager, "current" | "sandboxOf">;
  private readonly runtime: Pick<SandboxRuntime, "exec">;

  constructor(deps: { sessions: Pick<SessionManager, "current" | "sandboxOf">; runtime: Pick<SandboxRuntime, "exec"> }) {
    this.sessions = deps.sessions;
    this.runtime = deps.runtime;
  }

  async write(ownerId: string | undefined, file: SandboxFile): Promise<SandboxFileWritten> {
    const view = ownerId ? await this.sessions.current(ownerId) : undefined;
    if (!view) throw new ShipshapeError("not_found", "You have no sandbox yet.");
    const sandboxId = await this.sessions.sandboxOf(view.sessionId, view.ownerId);
    // The text travels as base64 in an argument, so no byte of it is ever read by the shell.
    const b64 = Buffer.from(file.content, "utf8").toString("base64");
    const r = await this.runtime.exec(
      sandboxId,
      ["sh", "-c", 'mkdir -p -- "$(dirname -- "$1")" && printf %s "$2" | base64 -d > "$1"', "sh", file.path, b64],
      { timeoutMs: 10_000 },
    );
    if (r.exitCode !== 0) {
      throw new ShipshapeError("bad_request", `Could not write ${file.path}: ${r.stderr.trim() || "the sandbox refused"}.`);
    }
    return { ok: true, path: file.path, bytes: Buffer.byteLength(file.content) };
  }
}
