import { availableParallelism } from "node:os";
import { z } from "zod";
import { readFileSync, existsSync } from "node:fs";
import path from "node:path";

/** "90s", "30m", "2h", "500ms" → milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a duration; write it like 90s, 30m or 2h`);
  const unit = { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2] as "ms" | "s" | "m" | "h" | "d"];
  return Math.round(Number(m[1]) * unit);
}

/** "512m", "2g", "1.5g", "1048576" → bytes. */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a size; write it like 512m or 2g`);
  const unit = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[(m[2] ?? "").toLowerCase() as "" | "k" | "m" | "g" | "t"];
  return Math.round(Number(m[1]) * unit);
}

const duration = (fallback: string) =>
  z.string().default(fallback).transform((v, ctx) => {
    try {
      return parseDuration(v);
    } catch (e) {
      ctx.addIssue({ code: "custom", message: (e as Error).message });
      return z.NEVER;
    }
  });

const size = (fallback: string) =>
  z.string().default(fallback).transform((v, ctx) => {
    try {
      return parseSize(v);
    } catch (e) {
      ctx.addIssue({ code: "custom", message: (e as Error).message });
      return z.NEVER;
    }
  });

const int = (fallback: number, min: number, max: number) =>
  z.coerce.number().int().min(min).max(max).default(fallback);

/** Every variable the server reads, with its default. The README's configuration table mirrors this. */
export const envSchema = z.object({
  PORT: int(4321, 0, 65535).describe("TCP port for the site, API and WebSockets"),
  HOST: z.string().default("0.0.0.0").describe("address to listen on"),
  SHIPSHAPE_DATA_DIR: z.string().default(".data").describe("where the database and the signing secret live"),
  SHIPSHAPE_SITE_DIR: z.string().default("dist").describe("the built Astro site to serve"),
  SHIPSHAPE_CONTENT_DIR: z.string().default("content").describe("lessons and exercises (exercises are graded from content/exercises)"),
  SHIPSHAPE_PUBLIC_URL: z
    .preprocess((v) => (typeof v === "string" ? v.trim() || undefined : v), z.string().optional())
    .transform((v, ctx) => {
      if (v === undefined) return undefined;
      const problem = publicUrlProblem(v);
      if (problem) {
        ctx.addIssue({ code: "custom", message: problem });
        return z.NEVER;
      }
      return new URL(v).origin;
    })
    .describe(
      "the address learners open, such as https://course.example.org; requests for any other host are refused (DNS rebinding). " +
        "Default: http://localhost:<PORT>, where the loopback addresses of the port are accepted too",
    ),
  SHIPSHAPE_ALLOWED_ORIGINS: z
    .string()
    .default("")
    .transform((v) => v.split(",").map((s) => s.trim()).filter(Boolean))
    .superRefine((list, ctx) => {
      for (const origin of list) {
        const problem = publicUrlProblem(origin);
        if (problem) ctx.addIssue({ code: "custom", message: `${origin}: ${problem}` });
      }
    })
    .transform((list) => list.map((origin) => new URL(origin).origin))
    .describe("extra origins allowed to open sessions, comma separated; the public URL's origin is always allowed"),
  SHIPSHAPE_SECRET: z.string().min(32).optional().describe("HMAC key for session tokens; generated into the data dir when unset"),
  SHIPSHAPE_ADMIN_SECRET: z
    .string()
    .min(16, "use at least 16 characters")
    .optional()
    .describe("instructors sign in with it at /instructor/; generated into the data dir (admin-secret) when unset"),
  SHIPSHAPE_SANDBOX_IMAGE: z.string().optional().describe("sandbox image; set-up writes the built tag to <data>/sandbox-image"),
  SHIPSHAPE_NAMESPACE: z
    .string()
    .regex(/^[a-z0-9]{1,16}$/, "use 1-16 lowercase letters or digits")
    .default("default")
    .describe("label namespace: servers sharing one engine but not one database must differ"),
  SHIPSHAPE_SANDBOX_NETWORK: z.string().default("shipshape-sandboxes").describe("Docker network the sandboxes join"),
  SHIPSHAPE_SANDBOX_RUNTIME: z.string().default("").describe("OCI runtime for sandboxes, e.g. sysbox-runc; empty means runc"),
  SHIPSHAPE_TIER: z
    .enum(["classroom", "isolated", "auto"])
    .default("classroom")
    .describe(
      "isolated: sandboxes are unprivileged LXD system containers (public sites; set up with SHIPSHAPE_TIER=isolated ./shipshape setup); " +
        "classroom: plain Docker-in-Docker, for trusted learners; auto: isolated when LXD and its sandbox image are set up here",
    ),
  SHIPSHAPE_LXD_SOCKET: z.string().default("/var/lib/lxd/unix.socket").describe("LXD's Unix socket (Incus: /var/lib/incus/unix.socket)"),
  SHIPSHAPE_LXD_IMAGE: z.string().optional().describe("LXD image alias of the sandbox; set-up writes it to <data>/lxd-image"),
  SHIPSHAPE_LXD_NETWORK: z.string().default("shipshape-lx0").describe("LXD bridge the isolated tier's sandboxes join"),
  SHIPSHAPE_LXD_POOL: z.string().default("shipshape").describe("LXD storage pool of the isolated tier's sandbox disks (btrfs for disk quotas)"),
  SHIPSHAPE_SANDBOX_MEMORY: size("1g").describe("memory limit per sandbox"),
  SHIPSHAPE_SANDBOX_CPUS: z.coerce.number().positive().max(64).default(1).describe("CPU limit per sandbox"),
  SHIPSHAPE_SANDBOX_PIDS: int(1024, 64, 1_000_000).describe("process limit per sandbox"),
  SHIPSHAPE_SANDBOX_DISK: size("4g").describe("disk limit for the inner /var/lib/docker"),
  SHIPSHAPE_SESSION_TTL: duration("2h").describe("longest life of a sandbox"),
  SHIPSHAPE_IDLE_TIMEOUT: duration("30m").describe("a sandbox with no terminal and no request for this long is removed"),
  SHIPSHAPE_REAP_INTERVAL: duration("30s").describe("how often expired and orphaned sandboxes are looked for"),
  SHIPSHAPE_NETWORK_CHECK_INTERVAL: duration("30s").describe(
    "how often the host firewall that isolates sandboxes (egress policy, per-sandbox port pins) is checked",
  ),
  SHIPSHAPE_NETWORK_REPAIR: z
    .enum(["true", "false"], { message: 'write "true" or "false"' })
    .default("true")
    .transform((v) => v === "true")
    .describe("re-apply a missing egress policy at once (false: only refuse new sandboxes and say so on /readyz)"),
  SHIPSHAPE_LIMIT_CHECK_INTERVAL: duration("10s").describe("how often open sandboxes are checked against their limits"),
  SHIPSHAPE_WARM_POOL: int(2, 0, 1000).describe("sandboxes kept started for the next learners (0 turns the pool off)"),
  SHIPSHAPE_CHECKS_AT_ONCE: int(2 * availableParallelism(), 1, 1000).describe(
    "checks graded at once (default: twice the CPU cores); more Check presses wait in line, served in order",
  ),
  SHIPSHAPE_MAX_SANDBOXES: z.coerce
    .number()
    .int()
    .min(1)
    .max(100_000)
    .optional()
    .describe("sandboxes alive at once on this server; default: what memory and disk hold (see defaultMaxSandboxes), at most 300"),
  SHIPSHAPE_SANDBOXES_PER_ADDRESS: int(10, 1, 100_000).describe(
    "sandboxes one client address (one /64 for IPv6) may hold at once; workshop seats are exempt",
  ),
  SHIPSHAPE_SESSIONS_PER_ADDRESS_PER_MINUTE: int(100, 1, 100_000).describe(
    "new sandboxes one client address may start per minute (also the burst); a class behind one NAT shares it",
  ),
  SHIPSHAPE_TERMINALS_PER_BROWSER: int(16, 1, 1000).describe("terminal sockets one browser (owner cookie) may hold open at once"),
  SHIPSHAPE_TRUSTED_PROXIES: z
    .string()
    .default("127.0.0.1,::1")
    .transform((v) => v.split(",").map((s) => s.trim()).filter(Boolean))
    .describe("reverse proxies whose X-Forwarded-For names the real client address, comma separated"),
  SHIPSHAPE_PREVIEW_DOMAIN: z
    .preprocess(
      (v) => (typeof v === "string" ? v.trim().toLowerCase() || undefined : v),
      z
        .string()
        .regex(
          /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?::\d{1,5})?$/,
          "write a host name such as preview.example.org (a port may follow: preview.localhost:4321), or off",
        )
        .optional(),
    )
    .describe(
      "previews on their own host names, https://p8080-<session>.<this domain>/ (wildcard DNS and TLS needed); " +
        "unset: localhost (http://p8080-<session>.localhost:<port>/) when the public URL is on this machine, " +
        "else /preview/<session>/<port>/ on the course's own origin, with a warning; off: always the latter",
    ),
  SHIPSHAPE_PREVIEW_SCHEME: z.enum(["https", "http"]).default("https").describe("scheme of preview links on SHIPSHAPE_PREVIEW_DOMAIN"),
  SHIPSHAPE_PREVIEW_SOCKETS_PER_OWNER: int(64, 1, 100_000).describe(
    "WebSockets open at once through one learner's previews (share links count against the owner)",
  ),
  SHIPSHAPE_PREVIEW_SOCKET_IDLE: duration("10m").describe("a preview WebSocket with no traffic either way for this long is closed"),
  SHIPSHAPE_PREVIEW_SHARE_TTL: duration("1h").describe("longest life of a preview share link (never beyond the sandbox's own)"),
  SHIPSHAPE_METRICS_TOKEN: z
    .string()
    .min(16, "use at least 16 characters")
    .optional()
    .describe("/metrics answers only to Authorization: Bearer <this token> (or the admin secret)"),
  SHIPSHAPE_RETENTION: duration("180d").describe("check and quiz results, and ended sessions, older than this are deleted"),
  SHIPSHAPE_LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
  SHIPSHAPE_WATCH_CONTENT: z
    .enum(["0", "1"])
    .default("0")
    .transform((v) => v === "1")
    .describe("1: reload exercises and quizzes when their files change (npm run dev sets it); a file with a mistake keeps the last good version"),
});

export type Config = z.infer<typeof envSchema> & {
  sandboxImage: string;
  /**
   * The origin learners open (SHIPSHAPE_PUBLIC_URL), or undefined for the embedded default,
   * http://localhost:<the port the server listens on> (known only once it listens, with PORT=0).
   */
  publicUrl: string | undefined;
  /** The LXD image alias of the isolated tier ("" when set-up has not imported one). */
  lxdImage: string;
  /** Which engine runs the sandboxes: LXD for the isolated tier, else Docker. */
  sandboxEngine: "lxd" | "docker";
  /** "isolated" with LXD or a user-namespaced OCI runtime, else the trusted-classroom DinD profile. */
  securityTier: "isolated" | "classroom";
};

export class ConfigError extends Error {}

/** Validates the environment at boot; a bad value names the variable and the fix. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(
      `The server's configuration is not valid:\n${lines.join("\n")}\n` +
        `Fix the environment variables above (see "Configuration" in the README) and start again.`,
    );
  }
  const c = parsed.data;
  const imageFile = path.join(c.SHIPSHAPE_DATA_DIR, "sandbox-image");
  const sandboxImage =
    c.SHIPSHAPE_SANDBOX_IMAGE ??
    (existsSync(imageFile) ? readFileSync(imageFile, "utf8").trim() : "shipshape/sandbox:latest");
  const lxdImageFile = path.join(c.SHIPSHAPE_DATA_DIR, "lxd-image");
  const lxdImage = c.SHIPSHAPE_LXD_IMAGE ?? (existsSync(lxdImageFile) ? readFileSync(lxdImageFile, "utf8").trim() : "");
  const lxdReady = lxdImage !== "" && existsSync(c.SHIPSHAPE_LXD_SOCKET);
  const sandboxEngine = c.SHIPSHAPE_TIER === "isolated" || (c.SHIPSHAPE_TIER === "auto" && lxdReady) ? "lxd" : "docker";
  const securityTier = sandboxEngine === "lxd" || c.SHIPSHAPE_SANDBOX_RUNTIME ? "isolated" : "classroom";
  return { ...c, sandboxImage, publicUrl: c.SHIPSHAPE_PUBLIC_URL, lxdImage, sandboxEngine, securityTier };

}

/** Why a public URL or allowed origin is not one, in words; undefined when it is fine. */
function publicUrlProblem(text: string): string | undefined {
  const example = "write the address learners open, such as https://course.example.org or http://192.168.1.20:4321";
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `"${text}" is not an address; ${example}`;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return `"${text}" must start with https:// or http://; ${example}`;
  if (url.username || url.password) return `"${text}" must not contain a user name or password`;
  if ((url.pathname !== "/" && url.pathname !== "") || url.search || url.hash) {
    return `"${text}" must be a scheme and host only (the course is served from /), such as ${url.origin}`;
  }
  return undefined;
}

/**
 * The global sandbox cap when SHIPSHAPE_MAX_SANDBOXES is unset: what this machine can hold if every
 * sandbox used its whole memory and disk limit, with a fifth kept back for the host, and never more
 * than 300. Each learner gets a limit, not a reservation, so this is conservative on purpose: the
 * operator who knows the class raises it.
 */
export function defaultMaxSandboxes(machine: {
  totalMemoryBytes: number;
  sandboxMemoryBytes: number;
  /** Free space where sandboxes write (the engine's data root); undefined when it cannot be read. */
  freeDiskBytes: number | undefined;
  sandboxDiskBytes: number;
}): { max: number; byMemory: number; byDisk: number | undefined } {
  const byMemory = Math.floor((0.8 * machine.totalMemoryBytes) / machine.sandboxMemoryBytes);
  const byDisk = machine.freeDiskBytes === undefined ? undefined : Math.floor((0.8 * machine.freeDiskBytes) / machine.sandboxDiskBytes);
  const max = Math.max(1, Math.min(300, byMemory, byDisk ?? Infinity));
  return { max, byMemory, byDisk };
}
