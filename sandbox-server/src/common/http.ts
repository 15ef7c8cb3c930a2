import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { ShipshapeError } from "../errors.ts";
import type { OriginPolicy } from "./public-origin.ts";

/**
 * Small HTTP helpers that every part serving HTTP needs: the main server (transport/), the
 * port preview (preview/) and the workshop watch socket. They know nothing about sessions,
 * sandboxes or routes, so a domain folder can use them without importing the transport.
 */

/**
 * A feature that serves part of the origin (or other Host names) on its own terms, such as the
 * port preview. Mounts see the request before the site and the API; they do their own checks.
 */
export interface HttpMount {
  matches(req: IncomingMessage, url: URL): boolean;
  handle(req: IncomingMessage, res: ServerResponse, ownerId: string | undefined): Promise<void>;
  upgrade?(req: IncomingMessage, socket: Duplex, head: Buffer, ownerId: string | undefined): void;
}

/**
 * Whether the page that sent this request may change things: its Origin must be the public URL's
 * (scheme included) or an allowed one. Never compared with the request's own Host, which a
 * DNS-rebinding page controls.
 */
export function originAllowed(req: IncomingMessage, policy: OriginPolicy): boolean {
  return policy.originAllowed(req.headers.origin);
}

export function readCookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return undefined; // not percent-encoded properly: as good as no cookie
      }
    }
  }
  return undefined;
}

/**
 * The request target as a URL, or undefined when it is not one. Never throws: a target such as
 * `//x%ZZ` would otherwise parse as a host name and fail outside any handler.
 */
export function requestUrl(req: IncomingMessage): URL | undefined {
  const raw = req.url ?? "/";
  try {
    return raw.startsWith("/") ? new URL(`http://placeholder${raw}`) : new URL(raw, "http://placeholder");
  } catch {
    return undefined;
  }
}

export function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
  res.end(text);
}

/** A small JSON request body, at most `maxBytes` (an empty body is `{}`); a clear error otherwise. */
export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const tooLarge = () => new ShipshapeError("payload_too_large", `The request is too large; the limit is ${Math.ceil(maxBytes / 1024)} KiB.`);
  if (Number(req.headers["content-length"] ?? 0) > maxBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw tooLarge();
    chunks.push(chunk);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new ShipshapeError("bad_request", "The request body is not valid JSON.");
  }
}
