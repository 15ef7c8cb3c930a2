/**
 * Who the server is on the web: the public URL learners open (SHIPSHAPE_PUBLIC_URL). It decides
 * which Host names are served (DNS rebinding), which Origins may change things (scheme included),
 * and how cookies are named and flagged. Nothing a client sends (Host, X-Forwarded-Proto) can
 * change any of these answers; they follow from configuration alone.
 */

/** Host names browsers always resolve to this machine, and that treat as secure contexts. */
const LOOPBACK_HOSTNAMES = new Set(["localhost", "127.0.0.1", "[::1]"]);

export interface OriginPolicy {
  /** Whether a request carrying this Origin header may change state or open a socket. */
  originAllowed(origin: string | undefined): boolean;
}

export interface CookieNames {
  owner: string;
  instructor: string;
  /** `Secure` on every cookie (and `__Host-` names): the public URL is https, or localhost. */
  secure: boolean;
}

export interface PublicOriginOptions {
  /** SHIPSHAPE_PUBLIC_URL as an origin; undefined: the embedded default, http://localhost:<listening port>. */
  configured: string | undefined;
  /** SHIPSHAPE_ALLOWED_ORIGINS, as origins. */
  extraOrigins: readonly string[];
  /**
   * Other Host names this server answers for: the preview hosts (p<port>-<session>.<preview domain>).
   * Their requests must reach the preview mount, which does its own checks.
   */
  otherHost?: (hostHeader: string) => boolean;
}

export class PublicOrigin implements OriginPolicy {
  private url: URL;
  private listeningPort: number | undefined;
  private readonly defaulted: boolean;
  private readonly extraOrigins: Set<string>;
  private readonly otherHost: (hostHeader: string) => boolean;
  readonly cookies: CookieNames;

  constructor(options: PublicOriginOptions) {
    this.defaulted = options.configured === undefined;
    this.url = new URL(options.configured ?? "http://localhost");
    this.extraOrigins = new Set(options.extraOrigins);
    this.otherHost = options.otherHost ?? (() => false);
    // Chromium and Firefox treat http://localhost as a secure context and keep Secure and
    // __Host- cookies there; the prefix stops a sibling host (a *.localhost preview, an http
    // page on a subdomain) from planting or shadowing the platform's cookies.
    const secure = this.url.protocol === "https:" || this.isLoopback();
    this.cookies = {
      owner: secure ? "__Host-shipshape_owner" : "shipshape_owner",
      instructor: secure ? "__Host-shipshape_instructor" : "shipshape_instructor",
      secure,
    };
  }

  /** Once listening: the default public URL gets the real port (PORT=0 picks one). */
  listening(port: number): void {
    this.listeningPort = port;
    if (this.defaulted) this.url = new URL(`http://localhost:${port}`);
  }

  /** The public origin, e.g. `https://course.example.org` (no trailing slash). */
  get origin(): string {
    return this.url.origin;
  }

  /** The Host a browser sends for the public URL, e.g. `course.example.org` or `localhost:4321`. */
  get host(): string {
    return this.url.host;
  }

  /**
   * Whether a request's Host header names this server. A DNS-rebinding page reaches the server
   * under the attacker's own name, which is never one of these.
   */
  hostAllowed(hostHeader: string | undefined): boolean {
    // Asked first and of the raw header: the preview proxy answers for every name on its domain,
    // malformed ones included, so that none of them ever reaches the site.
    if (hostHeader && this.otherHost(hostHeader)) return true;
    const host = parseHost(hostHeader, this.defaultPort);
    if (!host) return false;
    if (host.hostname === this.url.hostname && host.port === this.port) return true;
    return this.loopbackAlias(host.hostname, host.port);
  }

  /** Origin must be the public origin (scheme included), an allowed extra one, or a loopback alias. */
  originAllowed(origin: string | undefined): boolean {
    if (!origin || origin === "null") return false;
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      return false;
    }
    if (url.origin === this.url.origin || this.extraOrigins.has(url.origin)) return true;
    return url.protocol === this.url.protocol && this.loopbackAlias(url.hostname, portOf(url));
  }

  /**
   * With a localhost public URL, every loopback name of the same port is the same server (tests and
   * benches address it as 127.0.0.1); a public URL on a real name gets no aliases.
   */
  private loopbackAlias(hostname: string, port: number): boolean {
    if (!this.isLoopback() || !LOOPBACK_HOSTNAMES.has(hostname)) return false;
    return port === this.port || port === this.listeningPort;
  }

  private isLoopback(): boolean {
    return LOOPBACK_HOSTNAMES.has(this.url.hostname);
  }

  private get port(): number {
    return portOf(this.url);
  }

  private get defaultPort(): number {
    return this.url.protocol === "https:" ? 443 : 80;
  }
}

function portOf(url: URL): number {
  return url.port ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
}

/** `name[:port]` or `[v6][:port]`, lowercased; the port defaults to the public scheme's. */
export function parseHost(hostHeader: string | undefined, defaultPort: number): { hostname: string; port: number } | undefined {
  if (!hostHeader) return undefined;
  const m = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]{1,253})(?::(\d{1,5}))?$/i.exec(hostHeader.trim());
  if (!m) return undefined;
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  // A trailing dot names the same host ("localhost." = "localhost"); normalise it away.
  const hostname = m[1]!.toLowerCase().replace(/\.$/, "");
  return { hostname, port };
}

/** `Set-Cookie` for one of the platform's cookies; flags follow the public URL, never the request. */
export function cookieHeader(
  name: string,
  value: string,
  options: { secure: boolean; sameSite: "Lax" | "Strict"; maxAgeSeconds: number },
): string {
  return (
    `${name}=${encodeURIComponent(value)}; Path=/; HttpOnly; SameSite=${options.sameSite}; Max-Age=${options.maxAgeSeconds}` +
    (options.secure ? "; Secure" : "")
  );
}
