/**
 * Preview addresses, parsed and built. Pure functions: everything here is unit-tested without a
 * server. Two forms (docs/preview.md):
 *
 *   path form, on the site's own origin:   /preview/<sessionId>/<port>/<rest>
 *   host form, on the preview domain:      https://p<port>-<sessionId>.<domain>/<rest>
 *                                          (by default http://p<port>-<sessionId>.localhost:<port>/)
 *
 * WARNING: what a client names here only *selects* a preview; the address the proxy connects to
 * comes from the server's own session → sandbox map, never from the URL, Host or X-Forwarded-*.
 */

export const PREVIEW_PATH_PREFIX = "/preview/";

/** Session ids are newId(): lowercase letters and digits. Anything else is refused, not decoded. */
export const sessionIdPattern = /^[a-z0-9]{8,32}$/;

/** The host form's own paths (the token exchange); an app's paths under it are not reachable. */
export const RESERVED_HOST_PATH = "/__shipshape/";
export const AUTH_PATH = "/__shipshape/auth";

export interface PreviewTarget {
  sessionId: string;
  port: number;
}

export interface PathTarget extends PreviewTarget {
  /** `/preview/<sessionId>/<port>`, without the trailing slash. */
  prefix: string;
  /** What the app sees: the path after the prefix with the query, raw (never decoded); "" when the URL ends at the port. */
  rest: string;
}

export type Parsed<T> = { ok: true; target: T } | { ok: false; reason: string; sessionId?: string; port?: string };

/** Parses a port written in decimal without a sign or leading zeros; only 1-65535. */
export function parsePort(text: string): number | undefined {
  if (!/^[1-9][0-9]{0,4}$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
}

/**
 * The target of a path-form request, from the raw request target (`req.url`, never a normalised
 * URL: `/preview/x/../..` must be refused, not resolved).
 */
export function parsePreviewPath(rawUrl: string): Parsed<PathTarget> {
  if (!rawUrl.startsWith(PREVIEW_PATH_PREFIX)) return { ok: false, reason: "not a /preview/ path" };
  const q = rawUrl.indexOf("?");
  const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
  const query = q < 0 ? "" : rawUrl.slice(q);
  const segments = path.slice(PREVIEW_PATH_PREFIX.length).split("/");
  const [sessionId = "", portText] = segments;
  if (!sessionIdPattern.test(sessionId)) return { ok: false, reason: "session segment is not a session id", sessionId };
  if (portText === undefined) return { ok: false, reason: "no port in the preview path", sessionId };
  const port = parsePort(portText);
  if (port === undefined) return { ok: false, reason: "port is not a number from 1 to 65535", sessionId, port: portText };
  const prefix = `${PREVIEW_PATH_PREFIX}${sessionId}/${port}`;
  const restPath = path.slice(prefix.length);
  return { ok: true, target: { sessionId, port, prefix, rest: restPath === "" ? "" : restPath + query } };
}

/** The host name without a port, lowercased; undefined for anything that is not a plain host[:port]. */
export function hostnameOf(hostHeader: string | undefined): string | undefined {
  if (!hostHeader) return undefined;
  const m = /^([a-z0-9.-]{1,253})(?::(\d{1,5}))?$/i.exec(hostHeader.trim());
  if (!m || (m[2] !== undefined && Number(m[2]) > 65535)) return undefined;
  return m[1]?.toLowerCase();
}

/**
 * Whether a Host header is on the preview domain. Every such request is the preview's, including
 * malformed ones, so nothing on that domain ever reaches the site or API. The bare domain is the
 * preview's too, except `localhost` as the derived default: that is where the course itself lives.
 */
export function isPreviewHost(hostHeader: string | undefined, domain: Pick<PreviewDomain, "hostname" | "claimsBareHost">): boolean {
  const raw = (hostHeader ?? "").trim().toLowerCase().replace(/:\d*$/, "");
  return (domain.claimsBareHost && raw === domain.hostname) || raw.endsWith(`.${domain.hostname}`);
}

/** The target of a host-form request: `p<port>-<sessionId>.<domain>`, exactly one label deep. */
export function parsePreviewHost(hostHeader: string | undefined, domain: string): Parsed<PreviewTarget> {
  const hostname = hostnameOf(hostHeader);
  if (!hostname) return { ok: false, reason: "Host header is not a host name" };
  if (!hostname.endsWith(`.${domain}`)) return { ok: false, reason: "Host is not a preview host" };
  const label = hostname.slice(0, -(domain.length + 1));
  const m = /^p([0-9]{1,6})-([a-z0-9]{1,64})$/.exec(label);
  if (!m) return { ok: false, reason: "Host is not p<port>-<session>" };
  const [, portText = "", sessionId = ""] = m;
  if (!sessionIdPattern.test(sessionId)) return { ok: false, reason: "session label is not a session id", sessionId };
  const port = parsePort(portText);
  if (port === undefined) return { ok: false, reason: "port is not a number from 1 to 65535", sessionId, port: portText };
  return { ok: true, target: { sessionId, port } };
}

export function previewPath(sessionId: string, port: number): string {
  return `${PREVIEW_PATH_PREFIX}${sessionId}/${port}/`;
}

export interface PreviewDomain {
  /** Host name without a port, to match Host headers. */
  hostname: string;
  /** Host with the port, if any, to build links. */
  host: string;
  scheme: "https" | "http";
  /** Whether the bare domain (no `p<port>-<session>.` label) belongs to the preview as well. */
  claimsBareHost: boolean;
}

export function parsePreviewDomain(value: string, scheme: "https" | "http"): PreviewDomain {
  const host = value.toLowerCase();
  return { host, hostname: host.replace(/:\d+$/, ""), scheme, claimsBareHost: true };
}

/** Where previews are served, decided once at start from the configuration. */
export type PreviewForm =
  | { form: "host"; domain: PreviewDomain; origin: "configured" | "localhost" }
  | { form: "path"; warning: string };

/** Host names a browser resolves to this machine by itself: `localhost`, its subdomains, loopback addresses. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/^\[|\]$/g, "");
  return h === "localhost" || h.endsWith(".localhost") || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === "::1";
}

export const PATH_FORM_WARNING =
  "Port previews are served under /preview/<session>/<port>/ on the course's own origin: a learner's app runs " +
  "as the course there, so its JavaScript can call the course's API as whoever opens the preview. Fine for one " +
  "machine or a class you trust; otherwise set SHIPSHAPE_PREVIEW_DOMAIN to a domain of its own (docs/preview.md).";

/**
 * The preview form for this server (docs/preview.md, "Two ways to address a preview"):
 *
 *   SHIPSHAPE_PREVIEW_DOMAIN set          → that domain, with SHIPSHAPE_PREVIEW_SCHEME
 *   unset, public URL on this machine     → `http://p<port>-<session>.localhost:<public port>/`
 *                                           (the public URL's scheme and port):
 *                                           Chromium and Firefox resolve every `*.localhost` to
 *                                           loopback, so each preview is an origin of its own with
 *                                           no DNS set-up
 *   unset, public URL elsewhere (a LAN)   → the path form, with a warning (the browsers in the
 *                                           room would not resolve `*.localhost` to this server)
 *   `off`                                 → the path form, with the same warning
 */
export function choosePreviewForm(configuredDomain: string | undefined, scheme: "https" | "http", publicUrl: string): PreviewForm {
  if (configuredDomain === "off") return { form: "path", warning: PATH_FORM_WARNING };
  if (configuredDomain) return { form: "host", domain: parsePreviewDomain(configuredDomain, scheme), origin: "configured" };
  const url = new URL(publicUrl);
  if (!isLoopbackHost(url.hostname)) return { form: "path", warning: PATH_FORM_WARNING };
  // Same scheme and port as the course: whatever answers there (this server, or a local TLS proxy)
  // answers the preview hosts too. url.port is "" for the scheme's default port.
  const host = url.port ? `localhost:${url.port}` : "localhost";
  const previewScheme = url.protocol === "https:" ? "https" : "http";
  // The bare `localhost` stays the course's: with a public URL of http://localhost:4321 the site
  // and the previews share the host name and are told apart by the `p<port>-<session>.` label.
  return { form: "host", domain: { host, hostname: "localhost", scheme: previewScheme, claimsBareHost: false }, origin: "localhost" };
}

/** `https://p8080-<sessionId>.<domain>` (no trailing slash). */
export function previewOrigin(domain: PreviewDomain, sessionId: string, port: number): string {
  return `${domain.scheme}://p${port}-${sessionId}.${domain.host}`;
}

/** The token exchange on a preview host, then on to `next`. */
export function previewAuthUrl(domain: PreviewDomain, target: PreviewTarget, token: string, next = "/"): string {
  const q = new URLSearchParams({ token });
  if (next !== "/") q.set("next", next);
  return `${previewOrigin(domain, target.sessionId, target.port)}${AUTH_PATH}?${q.toString()}`;
}

/**
 * Where to go after the token exchange: a path on the same host only. Anything else (another
 * origin, `//host`, `/\host` which browsers treat like `//host`, control characters) becomes "/".
 */
export function safeNext(next: string | null | undefined): string {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\")) return "/";
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\]/.test(next)) return "/";
  return next;
}

export interface LocationContext {
  mode: "path" | "host";
  port: number;
  /** The sandbox's address on the sandbox network. */
  sandboxAddress: string;
  /** The preview of a port of the same sandbox: path form `/preview/<id>/<port>`, host form its origin. */
  baseFor: (port: number) => string;
}

const sandboxLocalHosts = new Set(["localhost", "127.0.0.1", "[::1]", "0.0.0.0", "[::]"]);

/**
 * An upstream redirect, made to work through the preview. The server never follows redirects;
 * the browser does, so a `Location` on the sandbox's own origin (the app saw
 * `Host: localhost:<port>`) must become a preview URL:
 *
 *   http://localhost:8080/x  → the preview of port 8080 (another port: that port's preview)
 *   http://localhost/x       → the preview of this port: an app published with `-p 8080:80`
 *                              names its own port 80, which means "here" (nginx does this)
 *   /x                       → path form: under the prefix; host form: unchanged
 *
 * Other origins pass unchanged: the browser goes there on its own, carrying nothing of ours.
 */
export function rewriteLocation(location: string, ctx: LocationContext): string {
  const trimmed = location.trim();
  if (/^[a-z][a-z0-9+.-]*:/i.test(trimmed) || trimmed.startsWith("//")) {
    let url: URL;
    try {
      url = new URL(trimmed, "http://unused.invalid");
    } catch {
      return location;
    }
    const own = sandboxLocalHosts.has(url.hostname) || url.hostname === ctx.sandboxAddress;
    if (url.protocol !== "http:" || !own) return location;
    const port = url.port === "" ? ctx.port : parsePort(url.port);
    if (port === undefined) return location;
    return joinBase(ctx.baseFor(port), `${url.pathname}${url.search}${url.hash}`);
  }
  if (ctx.mode === "path" && trimmed.startsWith("/")) return joinBase(ctx.baseFor(ctx.port), trimmed);
  return location;
}

function joinBase(base: string, path: string): string {
  return base.replace(/\/$/, "") + (path.startsWith("/") ? path : `/${path}`);
}
