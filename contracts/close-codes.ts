/**
 * WebSocket close codes of the terminal and watch sockets (docs/protocol.md, "Close codes"): the
 * server closes with them, the browser decides from them whether reconnecting can help.
 *
 * Kept apart from terminal-protocol.ts on purpose: that file builds zod schemas when it loads, and
 * the browser imports these numbers at run time; this file keeps zod out of the page's bundle.
 */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  policy: 1008,
  tooBig: 1009,
  serverError: 1011,
  /** A missing or second `hello` (server); no `pong` to a ping within 10 s (browser). */
  protocolViolation: 4000,
  unauthorized: 4001,
  unknownSession: 4004,
  expired: 4010,
  sandboxGone: 4011,
  /** The learner asked for a fresh sandbox in the same session: reconnect, a new shell waits there. */
  sandboxReset: 4012,
  rateLimited: 4029,
  engineUnavailable: 4503,
} as const;

export type CloseCodeValue = (typeof CloseCode)[keyof typeof CloseCode];
