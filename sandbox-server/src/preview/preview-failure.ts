import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { toShipshapeError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { isPreviewHost, type PreviewDomain } from "./preview-routes.ts";

/** A learner-facing refusal or failure: status, stable code, message, and (when it is a refusal) why, for the log. */
export class PreviewFailure extends Error {
  readonly status: number;
  readonly code: string;
  /** Why it was refused, for the log; set only for refusals (not for "your app is not answering"). */
  readonly reason: string | undefined;

  constructor(status: number, code: string, message: string, reason?: string) {
    super(message);
    this.status = status;
    this.code = code;
    this.reason = reason;
  }
}

export const messages = {
  badAddress: "This is not a preview address. Open previews from the port list on your lesson page.",
  badPort: "That is not a port number: ports go from 1 to 65535.",
  gone: "This sandbox no longer exists. Start a new one from the lesson page.",
  notOwner: "This preview belongs to another learner's sandbox.",
  private: "This preview is private. Open it from the port list on your lesson page, or ask its owner for a share link.",
  badToken: "This preview link is not valid or has expired. Open the preview again from the port list on your lesson page.",
  notRunning: "Your sandbox is not running. Start a new one from the lesson page.",
  serviceWorker:
    "Service workers cannot be registered through a /preview/ link, because it shares the course's origin. The operator can give previews their own domain (SHIPSHAPE_PREVIEW_DOMAIN).",
  wsOnly: "This address only speaks WebSocket.",
  foreignOrigin: "This preview's WebSocket was opened from another site and was refused.",
  starting: "The server is starting. Reload in a moment.",
  tooManySockets: (max: number) =>
    `Your previews already have ${max} WebSockets open, the most one learner may have. Close some tabs of your app, then reload.`,
};

/**
 * How a preview says no: an HTML page to a browser, plain text to anything else, a raw HTTP
 * answer on a socket not yet upgraded; refusals are logged with the session they named.
 */
export class PreviewAnswers {
  private readonly log: Logger;
  private readonly domain: () => PreviewDomain | undefined;

  constructor(log: Logger, domain: () => PreviewDomain | undefined) {
    this.log = log;
    this.domain = domain;
  }

  /** A thrown error that is not a PreviewFailure, as one (a server fault is logged). */
  failureOf(e: unknown): PreviewFailure {
    const err = toShipshapeError(e);
    if (err.status >= 500) this.log.error("preview failed", { code: err.code, detail: err.detail });
    return new PreviewFailure(err.status, err.code, err.userMessage);
  }

  fail(req: IncomingMessage, res: ServerResponse, failure: PreviewFailure): void {
    this.logRefusal(req, failure);
    if (res.headersSent) return void res.destroy();
    const html = /\btext\/html\b/.test(req.headers.accept ?? "");
    res.writeHead(failure.status, {
      "content-type": html ? "text/html; charset=utf-8" : "text/plain; charset=utf-8",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
      "x-shipshape-preview": failure.code,
    });
    res.end(req.method === "HEAD" ? undefined : html ? errorPage(failure) : `${failure.message}\n`);
  }

  failSocket(req: IncomingMessage, socket: Duplex, failure: PreviewFailure): void {
    this.logRefusal(req, failure);
    if (socket.destroyed) return;
    const body = `${failure.message}\n`;
    socket.end(
      `HTTP/1.1 ${failure.status} ${http.STATUS_CODES[failure.status] ?? "Error"}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nX-Shipshape-Preview: ${failure.code}\r\n\r\n${body}`,
    );
  }

  private logRefusal(req: IncomingMessage, failure: PreviewFailure): void {
    if (!failure.reason) return;
    this.log.warn("preview refused", {
      sessionId: refusedSessionId(req, this.domain()),
      reason: failure.reason,
      status: failure.status,
      method: req.method,
      host: (req.headers.host ?? "").slice(0, 100),
      url: (req.url ?? "").slice(0, 200),
    });
  }
}

/** For the log: the session a refused request named, as far as it can be told (raw, bounded). */
function refusedSessionId(req: IncomingMessage, domain: PreviewDomain | undefined): string | null {
  if (domain && isPreviewHost(req.headers.host, domain)) {
    const m = /^p[^-.]*-([^.]{0,64})/.exec((req.headers.host ?? "").toLowerCase());
    return m?.[1] ?? null;
  }
  const m = /^\/preview\/([^/?]{0,64})/.exec(req.url ?? "");
  return m?.[1] ?? null;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function errorPage(failure: PreviewFailure): string {
  const title = failure.status === 403 ? "Not your preview" : failure.status < 500 ? "No preview here" : "Your app is not answering";
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(title)}</title>
<style>
  :root { color-scheme: light dark; font-family: system-ui, sans-serif; }
  main { max-width: 36rem; margin: 15vh auto; padding: 0 1.5rem; line-height: 1.5; }
  h1 { font-size: 1.4rem; }
</style></head>
<body><main><h1>${escapeHtml(title)}</h1><p>${escapeHtml(failure.message)}</p></main></body>
</html>
`;
}
