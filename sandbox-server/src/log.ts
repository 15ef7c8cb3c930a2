/**
 * Structured logs: one JSON object per line on stderr, always with a level, a message and
 * whatever ids the caller knows (sessionId, sandboxId, terminal). Secrets never go in here.
 */
export type LogFields = Record<string, unknown>;
export type LogLevel = "debug" | "info" | "warn" | "error";

const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

export function createLogger(
  level: LogLevel = "info",
  base: LogFields = {},
  write: (line: string) => void = (line) => process.stderr.write(line + "\n"),
): Logger {
  const min = order[level];
  const emit = (lvl: LogLevel, msg: string, fields?: LogFields) => {
    if (order[lvl] < min) return;
    write(JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...base, ...fields }, redactingReplacer));
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (fields) => createLogger(level, { ...base, ...fields }, write),
  };
}

export const silentLogger: Logger = createLogger("error", {}, () => {});

/**
 * Query and fragment parameters that carry a credential: preview open and share tokens
 * (`?token=`), the instructor sign-in link (`#secret=`), and their kin.
 */
const SECRET_PARAMETER = /([?&#;](?:token|share|secret|key|password|code_verifier|access_token)=)[^&#\s"'<>]*/gi;

/**
 * A URL or any text with its credential parameters blanked: `/x?token=abc&next=/` becomes
 * `/x?token=[redacted]&next=/`.
 *
 * WARNING: every string a log line carries passes through this, because a logged request URL is
 * readable by whoever reads the logs, and a share link in it opens the learner's preview.
 */
export function redactSecrets(text: string): string {
  return text.replace(SECRET_PARAMETER, "$1[redacted]");
}

function redactingReplacer(_key: string, value: unknown): unknown {
  return typeof value === "string" ? redactSecrets(value) : value;
}
