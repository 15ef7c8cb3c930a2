/**
 * One error type for every boundary: a stable code for machines, a sentence for the learner,
 * and detail that only goes to the log.
 */
export type ErrorCode =
  | "bad_request"
  | "forbidden"
  | "unauthorized"
  | "not_found"
  | "payload_too_large"
  | "rate_limited"
  | "session_expired"
  | "sandbox_gone"
  | "sandbox_failed"
  | "engine_unavailable"
  | "limit_reached"
  | "internal";

const httpStatus: Record<ErrorCode, number> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  payload_too_large: 413,
  session_expired: 410,
  sandbox_gone: 410,
  rate_limited: 429,
  limit_reached: 429,
  sandbox_failed: 500,
  internal: 500,
  engine_unavailable: 503,
};

export class ShipshapeError extends Error {
  readonly code: ErrorCode;
  /** Shown to the learner: plain words, what happened and what to do. */
  readonly userMessage: string;
  /** For the log only; may name containers, paths, engine errors. */
  readonly detail: string | undefined;
  /** Extra fields for the client, e.g. which abuse rule was hit and when to retry. */
  readonly fields: { rule?: string; retryAfterSeconds?: number } | undefined;

  constructor(
    code: ErrorCode,
    userMessage: string,
    detail?: string,
    options?: { cause?: unknown; fields?: { rule?: string; retryAfterSeconds?: number } },
  ) {
    super(userMessage, options);
    this.name = "ShipshapeError";
    this.code = code;
    this.userMessage = userMessage;
    this.detail = detail;
    this.fields = options?.fields;
  }

  get status(): number {
    return httpStatus[this.code];
  }
}

export function isShipshapeError(e: unknown): e is ShipshapeError {
  return e instanceof ShipshapeError;
}

/** Turns anything thrown into a ShipshapeError without leaking internals to the learner. */
export function toShipshapeError(e: unknown): ShipshapeError {
  if (isShipshapeError(e)) return e;
  const detail = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return new ShipshapeError("internal", "Something went wrong on the server.", detail, { cause: e });
}
