import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import { rewriteLocation, type LocationContext } from "./preview-routes.ts";

export const PREVIEW_COOKIE = "shipshape_preview";
export const PREVIEW_COOKIE_SECURE = "__Host-shipshape_preview";

/**
 * The platform's cookies (`shipshape_owner`, `shipshape_instructor`, the preview's own, and any
 * added later under the same prefix): never forwarded to a learner's app, never settable by one.
 */
export function isPlatformCookie(name: string): boolean {
  return /^(?:__host-|__secure-)?shipshape_/i.test(name.trim());
}

/** RFC 9110 §7.6.1 hop-by-hop fields, plus the proxy-era ones; each hop sets its own. */
const hopByHop = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
]);

/** Headers a client could use to tell the app (or us) who or where it is; we set our own. */
const untrustedForwarding = new Set(["forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port", "x-forwarded-prefix", "x-real-ip"]);

/** Fields named in `Connection` are hop-by-hop too. */
function connectionTokens(value: string | string[] | undefined): Set<string> {
  const text = Array.isArray(value) ? value.join(",") : (value ?? "");
  return new Set(text.split(",").map((t) => t.trim().toLowerCase()).filter(Boolean));
}

/** The Cookie header without the platform's cookies; undefined when nothing is left. */
export function stripPlatformCookies(cookie: string | undefined): string | undefined {
  if (!cookie) return undefined;
  const kept = cookie
    .split(";")
    .map((p) => p.trim())
    .filter((p) => p !== "" && !isPlatformCookie(p.slice(0, p.indexOf("=") < 0 ? p.length : p.indexOf("="))));
  return kept.length > 0 ? kept.join("; ") : undefined;
}

/** Every value of one cookie (a browser may send several cookies of one name). */
export function cookieValues(cookie: string | undefined, name: string): string[] {
  const values: string[] = [];
  for (const part of (cookie ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        values.push(decodeURIComponent(part.slice(eq + 1).trim()));
      } catch {
        /* not ours: malformed escapes */
      }
    }
  }
  return values;
}

export interface UpstreamContext {
  mode: "path" | "host";
  port: number;
  /** What the browser sees: the preview host (host form) or the site's host (path form). */
  publicHost: string | undefined;
  publicProto: "http" | "https";
  /** Path form: `/preview/<id>/<port>`. */
  prefix: string | undefined;
  /** WebSocket handshakes keep Connection/Upgrade. */
  upgrade: boolean;
  /** Host form: the preview's own origin (`http://p8080-<id>.localhost:4321`), translated for the app (below). */
  previewOrigin?: string;
}

/**
 * The request headers the app receives. The app sees `Host: localhost:<port>` — what it would see
 * if the learner opened it inside the sandbox, and what dev servers' host checks accept — plus
 * X-Forwarded-Host/Proto/Prefix set by us (a client's own are dropped, never passed on).
 *
 * WARNING: the platform's cookies and, in the path form, Authorization are removed here: the app
 * is learner code and must never see another browser's credentials for the platform.
 */
export function upstreamRequestHeaders(incoming: IncomingHttpHeaders, ctx: UpstreamContext): OutgoingHttpHeaders {
  const named = connectionTokens(incoming.connection);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined) continue;
    if (hopByHop.has(name) || named.has(name) || untrustedForwarding.has(name)) continue;
    if (name === "host" || name === "cookie" || name === "expect") continue;
    // The site's own origin has no Authorization of its own, but a browser may attach one it
    // cached for the origin; the host form is the app's origin alone, so the app's auth works there.
    if (name === "authorization" && ctx.mode === "path") continue;
    out[name] = value;
  }
  const cookie = stripPlatformCookies(incoming.cookie);
  if (cookie) out.cookie = cookie;
  out.host = `localhost:${ctx.port}`;
  // The app's own pages, seen from the app: the app was told `Host: localhost:<port>`, so an Origin
  // of its preview host would look foreign to it, and apps that compare Origin with Host refuse
  // their own WebSockets and form posts (Jupyter, Django's CSRF check). Any other Origin passes as
  // it is, so the app's own checks still see a foreign site.
  if (ctx.previewOrigin && typeof incoming.origin === "string" && incoming.origin.toLowerCase() === ctx.previewOrigin) {
    out.origin = `http://localhost:${ctx.port}`;
  }
  if (ctx.publicHost) out["x-forwarded-host"] = ctx.publicHost;
  out["x-forwarded-proto"] = ctx.publicProto;
  if (ctx.prefix) out["x-forwarded-prefix"] = ctx.prefix;
  if (ctx.upgrade) {
    out.connection = "Upgrade";
    out.upgrade = incoming.upgrade ?? "websocket";
  } else {
    out.connection = "keep-alive";
  }
  return out;
}

export interface DownstreamContext extends LocationContext {
  /** Path form: `/preview/<id>/<port>`, the directory app cookies are confined to. */
  prefix: string | undefined;
}

/**
 * The response headers the browser receives, from the app's raw header list (order and repeats
 * kept). Hop-by-hop fields go; Location and Set-Cookie are made to fit the preview.
 *
 * WARNING: in the path form the app's responses share the site's origin, so headers that act on
 * the whole origin are removed: Service-Worker-Allowed (a worker controlling the site),
 * Clear-Site-Data (wiping the learner's session cookie), Strict-Transport-Security.
 */
export function downstreamResponseHeaders(rawHeaders: string[], ctx: DownstreamContext, upgrade = false): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) pairs.push([rawHeaders[i]!, rawHeaders[i + 1]!]);
  const named = connectionTokens(pairs.filter(([n]) => n.toLowerCase() === "connection").map(([, v]) => v));
  const out: Array<[string, string]> = [];
  for (const [name, value] of pairs) {
    const lower = name.toLowerCase();
    if (upgrade && (lower === "connection" || lower === "upgrade")) {
      out.push([name, value]);
      continue;
    }
    if (hopByHop.has(lower) || named.has(lower)) continue;
    if (ctx.mode === "path" && (lower === "service-worker-allowed" || lower === "clear-site-data" || lower === "strict-transport-security")) continue;
    if (lower === "location") {
      out.push([name, rewriteLocation(value, ctx)]);
      continue;
    }
    if (lower === "set-cookie") {
      const cookie = rewriteSetCookie(value, ctx.prefix);
      if (cookie !== undefined) out.push([name, cookie]);
      continue;
    }
    out.push([name, value]);
  }
  return out;
}

/**
 * An app's Set-Cookie, confined to its preview: no Domain (host-only, so an app cannot toss
 * cookies onto sibling previews or the site), Path under the prefix in the path form, and never a
 * cookie named like the platform's. undefined means "drop it".
 */
export function rewriteSetCookie(header: string, prefix: string | undefined): string | undefined {
  const parts = header.split(";");
  const first = parts.shift() ?? "";
  const eq = first.indexOf("=");
  const name = (eq < 0 ? "" : first.slice(0, eq)).trim();
  if (!name || isPlatformCookie(name)) return undefined;
  const attrs: string[] = [];
  for (const raw of parts) {
    const attr = raw.trim();
    const key = attr.split("=", 1)[0]!.trim().toLowerCase();
    if (key === "domain") continue;
    if (key === "path" && prefix) {
      const value = attr.includes("=") ? attr.slice(attr.indexOf("=") + 1).trim() : "";
      attrs.push(`Path=${prefix}${value.startsWith("/") ? value : "/"}`);
      continue;
    }
    if (attr) attrs.push(attr);
  }
  return [first.trim(), ...attrs].join("; ");
}
