import { z } from "zod";

/**
 * The wire contract of docs/protocol.md, spoken by the sandbox server and the browser alike.
 * Client messages are validated here and nowhere else. Close codes live in close-codes.ts.
 */
export const MAX_FRAME_BYTES = 64 * 1024;
export const HELLO_TIMEOUT_MS = 10_000;

export const COLS = { min: 2, max: 500 } as const;
export const ROWS = { min: 1, max: 200 } as const;

/** A terminal's name (`<Terminal name>` in a lesson, `terminal` in hello): sockets with one name share one shell. */
export const terminalNamePattern = /^[a-z0-9-]{1,32}$/;

const clamp = (min: number, max: number) =>
  z.number().finite().transform((n) => Math.min(max, Math.max(min, Math.round(n))));

export const helloSchema = z.object({
  type: z.literal("hello"),
  token: z.string().min(1).max(512),
  terminal: z.string().regex(terminalNamePattern, "terminal names use a-z, 0-9 and '-' (at most 32)").default("main"),
  cols: clamp(COLS.min, COLS.max).default(80),
  rows: clamp(ROWS.min, ROWS.max).default(24),
});

export const resizeSchema = z.object({
  type: z.literal("resize"),
  cols: clamp(COLS.min, COLS.max),
  rows: clamp(ROWS.min, ROWS.max),
});

export const ackSchema = z.object({
  type: z.literal("ack"),
  bytes: z.number().int().nonnegative().max(1 << 30),
});

export const pingSchema = z.object({
  type: z.literal("ping"),
  t: z.number().finite(),
});

export const clientMessageSchema = z.discriminatedUnion("type", [helloSchema, resizeSchema, ackSchema, pingSchema]);
export type ClientMessage = z.infer<typeof clientMessageSchema>;
export type Hello = z.infer<typeof helloSchema>;

export type ServerMessage =
  | { type: "status"; state: "starting"; step: string; progress: number }
  | { type: "ready"; sessionId: string; terminal: string; replayed: boolean }
  | { type: "pong"; t: number }
  | { type: "error"; code: string; message: string }
  | { type: "notice"; code: string; message: string };

/**
 * What the instructor's read-only watch socket (`/ws/watch`, docs/workshops.md) sends besides the
 * terminal's bytes: the learner's terminal size (the viewer draws at it), that watching began, and
 * the shell's own notices.
 */
export type WatchMessage =
  | { type: "size"; cols: number; rows: number }
  | { type: "ready"; learner: string; terminal: string }
  | { type: "pong"; t: number }
  | Exclude<ServerMessage, { type: "ready" }>;

export type ParseResult = { ok: true; message: ClientMessage } | { ok: false; code: string; message: string };

/** Parses one text frame; the error names what was wrong in words a person can act on. */
export function parseClientMessage(text: string): ParseResult {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, code: "malformed_json", message: "That message is not valid JSON." };
  }
  const type = (raw as { type?: unknown } | null)?.type;
  if (typeof type !== "string" || !["hello", "resize", "ack", "ping"].includes(type)) {
    return { ok: false, code: "unknown_type", message: `Unknown message type ${JSON.stringify(type ?? null)}; expected hello, resize, ack or ping.` };
  }
  const parsed = clientMessageSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, code: "invalid_message", message: `Invalid ${type} message: ${issue?.path.join(".") || "body"}: ${issue?.message}` };
  }
  return { ok: true, message: parsed.data };
}
