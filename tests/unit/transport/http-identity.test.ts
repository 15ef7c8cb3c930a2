/**
 * The pure parts of "HTTP and identity" (docs/security.md): which Host and Origin the server
 * accepts, how cookies are named, per-address keys, the default sandbox cap, log redaction,
 * instructor sign-out, and retention. The request-level probes are in
 * tests/security/http-identity.test.ts.
 */
import { describe, expect, it } from "vitest";
import { ConfigError, defaultMaxSandboxes, loadConfig } from "../../../sandbox-server/src/config.ts";
import { createLogger, redactSecrets } from "../../../sandbox-server/src/log.ts";
import { InstructorSessionStore } from "../../../sandbox-server/src/store/instructor-session-store.ts";
import { pruneOlderThan } from "../../../sandbox-server/src/store/retention.ts";
import { SqliteStore as Store } from "../../../sandbox-server/src/store/store.ts";
import { SqliteWorkshopStore as WorkshopStore } from "../../../sandbox-server/src/store/workshop-store.ts";
import { PublicOrigin } from "../../../sandbox-server/src/common/public-origin.ts";
import { addressKey, ConcurrencyLimit } from "../../../sandbox-server/src/transport/rate-limiter.ts";
import { INSTRUCTOR_SESSION_MS, InstructorAuth } from "../../../sandbox-server/src/workshops/instructor-auth.ts";

describe("public URL: Host check (DNS rebinding)", () => {
  it("serves only the public URL's host, with its scheme's default port", () => {
    const o = new PublicOrigin({ configured: "https://course.example.org", extraOrigins: [] });
    o.listening(4321);
    expect(o.hostAllowed("course.example.org")).toBe(true);
    expect(o.hostAllowed("COURSE.example.org:443")).toBe(true);
    expect(o.hostAllowed("course.example.org.")).toBe(true);
    // A rebinding page reaches the server under its own name.
    expect(o.hostAllowed("attacker.example")).toBe(false);
    expect(o.hostAllowed("course.example.org:4321")).toBe(false);
    expect(o.hostAllowed("course.example.org.attacker.example")).toBe(false);
    // Loopback names are aliases only when the public URL itself is localhost.
    expect(o.hostAllowed("127.0.0.1:4321")).toBe(false);
    expect(o.hostAllowed("localhost:4321")).toBe(false);
    expect(o.hostAllowed(undefined)).toBe(false);
    expect(o.hostAllowed("a b")).toBe(false);
  });

  it("accepts every loopback name of the listening port for the embedded default", () => {
    const o = new PublicOrigin({ configured: undefined, extraOrigins: [] });
    o.listening(40123);
    expect(o.origin).toBe("http://localhost:40123");
    for (const host of ["localhost:40123", "127.0.0.1:40123", "[::1]:40123"]) expect(o.hostAllowed(host)).toBe(true);
    expect(o.hostAllowed("localhost:40124")).toBe(false);
    expect(o.hostAllowed("localhost")).toBe(false);
    expect(o.hostAllowed("rebind.attacker.example:40123")).toBe(false);
    expect(o.hostAllowed("192.168.1.20:40123")).toBe(false);
  });

  it("passes the preview hosts it is told about on to the preview proxy", () => {
    const o = new PublicOrigin({ configured: "https://course.example.org", extraOrigins: [], otherHost: (h) => h.endsWith(".preview.example.org") });
    expect(o.hostAllowed("p8080-abc.preview.example.org")).toBe(true);
    expect(o.hostAllowed("p8080-abc.attacker.example")).toBe(false);
  });
});

describe("public URL: Origin check", () => {
  it("compares the whole origin with the public URL, scheme included", () => {
    const o = new PublicOrigin({ configured: "https://course.example.org", extraOrigins: ["https://lms.example.org"] });
    expect(o.originAllowed("https://course.example.org")).toBe(true);
    expect(o.originAllowed("https://course.example.org:443")).toBe(true);
    expect(o.originAllowed("http://course.example.org")).toBe(false);
    expect(o.originAllowed("https://course.example.org:8443")).toBe(false);
    expect(o.originAllowed("https://lms.example.org")).toBe(true);
    expect(o.originAllowed("https://evil.example")).toBe(false);
    expect(o.originAllowed("null")).toBe(false);
    expect(o.originAllowed(undefined)).toBe(false);
    expect(o.originAllowed("not a url")).toBe(false);
  });

  it("takes loopback aliases of the default only with its scheme and port", () => {
    const o = new PublicOrigin({ configured: undefined, extraOrigins: [] });
    o.listening(40123);
    expect(o.originAllowed("http://127.0.0.1:40123")).toBe(true);
    expect(o.originAllowed("http://[::1]:40123")).toBe(true);
    expect(o.originAllowed("https://localhost:40123")).toBe(false);
    expect(o.originAllowed("http://localhost:40999")).toBe(false);
  });
});

describe("cookies follow the configured public URL", () => {
  it("are __Host- and Secure on https and on localhost, plain on http elsewhere", () => {
    expect(new PublicOrigin({ configured: "https://course.example.org", extraOrigins: [] }).cookies).toEqual({
      owner: "__Host-shipshape_owner",
      instructor: "__Host-shipshape_instructor",
      secure: true,
    });
    expect(new PublicOrigin({ configured: undefined, extraOrigins: [] }).cookies.owner).toBe("__Host-shipshape_owner");
    expect(new PublicOrigin({ configured: "http://192.168.1.20:4321", extraOrigins: [] }).cookies).toEqual({
      owner: "shipshape_owner",
      instructor: "shipshape_instructor",
      secure: false,
    });
  });
});

describe("configuration of the public URL and the new limits", () => {
  it("defaults to the embedded localhost, and validates with a message that names the fix", () => {
    const c = loadConfig({ SHIPSHAPE_DATA_DIR: "/nonexistent" });
    expect(c.publicUrl).toBeUndefined();
    expect(c.SHIPSHAPE_SANDBOXES_PER_ADDRESS).toBe(10);
    expect(c.SHIPSHAPE_MAX_SANDBOXES).toBeUndefined();
    expect(c.SHIPSHAPE_RETENTION).toBe(180 * 86400_000);
    expect(loadConfig({ SHIPSHAPE_PUBLIC_URL: "https://Course.Example.org/" }).publicUrl).toBe("https://course.example.org");
    for (const [value, message] of [
      ["course.example.org", /not an address; write the address learners open, such as https:\/\/course.example.org/],
      ["ftp://course.example.org", /must start with https:\/\/ or http:\/\//],
      ["https://course.example.org/lessons", /scheme and host only .* such as https:\/\/course.example.org/],
      ["https://user:pw@course.example.org", /user name or password/],
    ] as const) {
      expect(() => loadConfig({ SHIPSHAPE_PUBLIC_URL: value })).toThrow(ConfigError);
      expect(() => loadConfig({ SHIPSHAPE_PUBLIC_URL: value })).toThrow(message);
      expect(() => loadConfig({ SHIPSHAPE_PUBLIC_URL: value })).toThrow(/SHIPSHAPE_PUBLIC_URL/);
    }
    expect(() => loadConfig({ SHIPSHAPE_ALLOWED_ORIGINS: "https://ok.example, lms.example" })).toThrow(/SHIPSHAPE_ALLOWED_ORIGINS.*lms.example/);
    expect(() => loadConfig({ SHIPSHAPE_METRICS_TOKEN: "short" })).toThrow(/SHIPSHAPE_METRICS_TOKEN: use at least 16 characters/);
    expect(() => loadConfig({ SHIPSHAPE_RETENTION: "forever" })).toThrow(/SHIPSHAPE_RETENTION/);
  });

  it("sets the default sandbox cap by what memory and disk hold, at most 300", () => {
    const GiB = 1024 ** 3;
    // This machine: 24 GiB, 1 GiB sandboxes; the old fixed 300 promised 300 GiB.
    expect(defaultMaxSandboxes({ totalMemoryBytes: 24 * GiB, sandboxMemoryBytes: GiB, freeDiskBytes: 1000 * GiB, sandboxDiskBytes: 4 * GiB })).toEqual({
      max: 19,
      byMemory: 19,
      byDisk: 200,
    });
    expect(defaultMaxSandboxes({ totalMemoryBytes: 24 * GiB, sandboxMemoryBytes: GiB, freeDiskBytes: 40 * GiB, sandboxDiskBytes: 4 * GiB }).max).toBe(8);
    expect(defaultMaxSandboxes({ totalMemoryBytes: 1024 * GiB, sandboxMemoryBytes: GiB, freeDiskBytes: undefined, sandboxDiskBytes: 4 * GiB }).max).toBe(300);
    expect(defaultMaxSandboxes({ totalMemoryBytes: GiB, sandboxMemoryBytes: 2 * GiB, freeDiskBytes: undefined, sandboxDiskBytes: 4 * GiB }).max).toBe(1);
  });
});

describe("per-address keys and concurrent holders", () => {
  it("keys IPv4 by the address and IPv6 by its /64", () => {
    expect(addressKey("198.51.100.7")).toBe("198.51.100.7");
    expect(addressKey("2001:db8:1:2::1")).toBe("2001:db8:1:2::/64");
    expect(addressKey("2001:0db8:0001:0002:ffff:ffff:ffff:ffff")).toBe("2001:db8:1:2::/64");
    expect(addressKey("2001:db8:1:3::1")).toBe("2001:db8:1:3::/64");
    expect(addressKey("::1")).toBe("0:0:0:0::/64");
    expect(addressKey("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(addressKey("64:ff9b::192.0.2.1")).toBe("64:ff9b:0:0::/64");
    expect(addressKey("not-an-address")).toBe("not-an-address");
    expect(addressKey("1:2:3")).toBe("1:2:3");
  });

  it("counts owners that still hold, except the one replacing its own", () => {
    const live = new Set(["a", "b", "c"]);
    const limit = new ConcurrencyLimit((owner) => live.has(owner));
    for (const o of ["a", "b", "c"]) limit.add("k", o);
    expect(limit.count("k")).toBe(3);
    expect(limit.count("k", "a")).toBe(2);
    expect(limit.count("other")).toBe(0);
    live.delete("b"); // its sandbox ended
    expect(limit.count("k")).toBe(2);
  });
});

describe("secrets stay out of logs", () => {
  it("blanks token and secret parameters in every logged string", () => {
    expect(redactSecrets("/.shipshape/auth?token=abc.def&next=/x")).toBe("/.shipshape/auth?token=[redacted]&next=/x");
    expect(redactSecrets("http://h/instructor/#secret=abcde-fghjk")).toBe("http://h/instructor/#secret=[redacted]");
    expect(redactSecrets("/preview/x/8080/?page=2")).toBe("/preview/x/8080/?page=2");
    const lines: string[] = [];
    createLogger("info", {}, (l) => lines.push(l)).warn("preview refused", { url: "/.shipshape/auth?token=s3cr3t-share", nested: { u: "?share=zz" } });
    expect(lines.join("")).not.toMatch(/s3cr3t-share|zz/);
    expect(JSON.parse(lines[0]!).url).toBe("/.shipshape/auth?token=[redacted]");
  });
});

describe("instructor sign-out", () => {
  it("revokes the sign-in on the server (a copied cookie stops working) and ends what is open on it", async () => {
    const store = new Store(":memory:");
    const auth = new InstructorAuth("correct horse battery staple", Date.now, new InstructorSessionStore(store.db));
    const one = auth.issue().value;
    const other = auth.issue().value;
    const ended: string[] = [];
    await auth.watch(one, () => ended.push("stream on one"));
    await auth.watch(other, () => ended.push("stream on other"));
    await auth.revoke(one);
    expect(await auth.verify(one)).toBe(false);
    expect(await auth.verify(other)).toBe(true);
    expect(ended).toEqual(["stream on one"]);
    // Remembered by the database: a server restarted on the same data keeps it revoked.
    expect(await new InstructorAuth("correct horse battery staple", Date.now, new InstructorSessionStore(store.db)).verify(one)).toBe(false);
  });

  it("ends a watch when the cookie expires", async () => {
    let now = 1_000_000;
    const auth = new InstructorAuth("correct horse battery staple", () => now);
    const value = auth.issue().value;
    now += INSTRUCTOR_SESSION_MS - 30; // 30 ms of the sign-in left
    let ended = false;
    await auth.watch(value, () => (ended = true));
    await new Promise((r) => setTimeout(r, 80));
    expect(ended).toBe(true);
  });
});

describe("retention", () => {
  it("deletes results, ended sessions and ended workshops older than the cut, and nothing live", async () => {
    const store = new Store(":memory:");
    const workshops = new WorkshopStore(store.db);
    const day = 86400_000;
    const now = 400 * day;
    const result = (ownerId: string, at: number) =>
      store.results.insert({ ownerId, sessionId: "s", workshopId: null, exerciseId: "e", taskId: "t", passed: true, message: "", at });
    await result("old", now - 200 * day);
    await result("new", now - 10 * day);
    const session = (id: string, state: "ready" | "ended", lastActiveAt: number) =>
      store.sessions.insert({ id, ownerId: id, sandboxId: null, workshopId: null, createdAt: lastActiveAt, expiresAt: lastActiveAt, lastActiveAt, state, endedReason: null });
    await session("old-ended", "ended", now - 200 * day);
    await session("old-live", "ready", now - 200 * day);
    await session("new-ended", "ended", now - day);
    const w = (id: string, endedAt: number | null) =>
      workshops.workshops.insert({ id, code: id.toUpperCase(), title: id, lessons: [], capacity: 1, durationMs: 1, warmTarget: 0, createdAt: 0, startedAt: null, endsAt: null, endedAt, endedReason: null });
    await w("w-old", now - 200 * day);
    await w("w-running", null);
    const pruned = pruneOlderThan(store.db, now - 180 * day);
    expect(pruned).toEqual({ results: 1, sessions: 1, workshops: 1 });
    expect(await store.results.progressOf("old")).toEqual([]);
    expect(await store.results.progressOf("new")).toHaveLength(1);
    expect(await store.sessions.get("old-live")).toBeDefined();
    expect(await store.sessions.get("old-ended")).toBeUndefined();
    expect(await workshops.workshops.get("w-running")).toBeDefined();
  });
});
