import { z } from "zod";

/**
 * The learner's sandbox session over HTTP (docs/protocol.md, "Getting a session"). The server
 * validates requests with these schemas; the browser imports only the types (`import type`).
 */

/** Largest file a lesson's file block may place in the sandbox. */
export const MAX_FILE_BYTES = 64 * 1024;

/** `POST /api/sessions`: `{ fresh: true }` ends the current sandbox and starts another. */
export const openSessionSchema = z.object({ fresh: z.boolean().optional() }).strict();
export type OpenSession = z.infer<typeof openSessionSchema>;

/** `POST /api/sessions/current/files`: a file block's path and text. */
export const sandboxFileSchema = z
  .object({
    path: z
      .string()
      .min(2)
      .max(1024)
      .regex(/^\/[^\0]*$/, "must be an absolute path such as /root/app/Dockerfile"),
    content: z.string().max(MAX_FILE_BYTES, `files are limited to ${MAX_FILE_BYTES / 1024} KiB`),
  })
  .strict();
export type SandboxFile = z.infer<typeof sandboxFileSchema>;

/** Where the sandbox is in its life, as the server last saw it. */
export type SandboxState =
  | { state: "starting"; step: string; progress: number }
  | { state: "ready" }
  | { state: "expired"; message: string }
  | { state: "failed"; message: string };

/** The limits every sandbox runs under, so the page can name them. */
export interface SessionLimits {
  memoryBytes: number;
  cpus: number;
  pids: number;
  diskBytes: number;
  ttlMs: number;
  idleTimeoutMs: number;
}

/** `POST /api/sessions` and `GET /api/sessions/current`. `token` opens the terminal sockets (hello). */
export type SessionAnswer = {
  sessionId: string;
  token: string;
  /** ISO time. */
  expiresAt: string;
  limits: SessionLimits;
} & SandboxState;

/** `POST /api/sessions/current/files` */
export interface SandboxFileWritten {
  ok: true;
  path: string;
  bytes: number;
}
