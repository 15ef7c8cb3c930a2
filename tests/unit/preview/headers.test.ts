import { describe, expect, it } from "vitest";
import {
  cookieValues,
  downstreamResponseHeaders,
  rewriteSetCookie,
  stripPlatformCookies,
  upstreamRequestHeaders,
  type DownstreamContext,
} from "../../../sandbox-server/src/preview/preview-headers.ts";
import { authorizePreview, ownerRule, type PreviewAccessRule, type PreviewSubject } from "../../../sandbox-server/src/preview/preview-access.ts";

const SID = "abcdefgh12345678";

describe("request headers to the app", () => {
  const incoming = {
    host: "127.0.0.1:22",
    cookie: "shipshape_owner=o.sig; app=1; shipshape_preview=t; __Host-shipshape_preview=u; shipshape_instructor=i; theme=dark",
    authorization: "Bearer platform",
    connection: "keep-alive, x-secret",
    "x-secret": "hop",
    "keep-alive": "timeout=5",
    te: "trailers",
    "proxy-authorization": "Basic x",
    "x-forwarded-for": "10.0.0.1",
    "x-forwarded-host": "evil.example",
    forwarded: "for=1.2.3.4",
    "x-real-ip": "1.2.3.4",
    expect: "100-continue",
    accept: "text/html",
    "user-agent": "test",
  };

  it("keeps the app's own headers and replaces the rest with ours (path form)", () => {
    expect(
      upstreamRequestHeaders(incoming, { mode: "path", port: 8080, publicHost: "course.example", publicProto: "https", prefix: `/preview/${SID}/8080`, upgrade: false }),
    ).toEqual({
      accept: "text/html",
      "user-agent": "test",
      cookie: "app=1; theme=dark",
      host: "localhost:8080",
      "x-forwarded-host": "course.example",
      "x-forwarded-proto": "https",
      "x-forwarded-prefix": `/preview/${SID}/8080`,
      connection: "keep-alive",
    });
  });

  it("passes the app's own Authorization on its own host, and keeps the upgrade of a WebSocket", () => {
    const out = upstreamRequestHeaders(
      { ...incoming, upgrade: "websocket", "sec-websocket-key": "k", connection: "Upgrade" },
      { mode: "host", port: 3000, publicHost: `p3000-${SID}.preview.example.org`, publicProto: "https", prefix: undefined, upgrade: true },
    );
    expect(out.authorization).toBe("Bearer platform");
    expect(out.connection).toBe("Upgrade");
    expect(out.upgrade).toBe("websocket");
    expect(out["sec-websocket-key"]).toBe("k");
    expect(out["x-forwarded-prefix"]).toBeUndefined();
    expect(out.cookie).toBe("app=1; theme=dark");
  });

  it("removes the cookie header when only the platform's cookies were in it", () => {
    expect(stripPlatformCookies("shipshape_owner=a; shipshape_preview=b")).toBeUndefined();
    expect(stripPlatformCookies("shipshape_anything_later=a;  a=b ; myshipshape_x=c")).toBe("a=b; myshipshape_x=c");
    expect(stripPlatformCookies(undefined)).toBeUndefined();
  });

  it("finds every value of a cookie name", () => {
    expect(cookieValues("a=1; b=2; a=%7E3; a=%E0%A4%A", "a")).toEqual(["1", "~3"]);
  });
});

describe("response headers to the browser", () => {
  const ctx = (mode: "path" | "host"): DownstreamContext => ({
    mode,
    port: 8080,
    sandboxAddress: "10.213.128.5",
    baseFor: (p) => (mode === "path" ? `/preview/${SID}/${p}` : `https://p${p}-${SID}.preview.example.org`),
    prefix: mode === "path" ? `/preview/${SID}/8080` : undefined,
  });
  const raw = [
    "Content-Type", "text/html",
    "Connection", "keep-alive, X-Hop",
    "X-Hop", "1",
    "Transfer-Encoding", "chunked",
    "Keep-Alive", "timeout=5",
    "Location", "http://localhost:8080/next",
    "Set-Cookie", "a=1; Path=/; Domain=localhost",
    "Set-Cookie", "shipshape_owner=forged; Path=/",
    "Set-Cookie", "b=2",
    "Service-Worker-Allowed", "/",
    "Clear-Site-Data", '"cookies"',
    "Strict-Transport-Security", "max-age=1",
  ];

  it("confines the app to its prefix in the path form", () => {
    expect(downstreamResponseHeaders(raw, ctx("path"))).toEqual([
      ["Content-Type", "text/html"],
      ["Location", `/preview/${SID}/8080/next`],
      ["Set-Cookie", `a=1; Path=/preview/${SID}/8080/`],
      ["Set-Cookie", "b=2"],
    ]);
  });

  it("keeps origin-wide headers on the app's own host, but not Domain cookies or ours", () => {
    expect(downstreamResponseHeaders(raw, ctx("host"))).toEqual([
      ["Content-Type", "text/html"],
      ["Location", `https://p8080-${SID}.preview.example.org/next`],
      ["Set-Cookie", "a=1; Path=/"],
      ["Set-Cookie", "b=2"],
      ["Service-Worker-Allowed", "/"],
      ["Clear-Site-Data", '"cookies"'],
      ["Strict-Transport-Security", "max-age=1"],
    ]);
  });

  it("keeps Connection and Upgrade on a 101", () => {
    expect(downstreamResponseHeaders(["Upgrade", "websocket", "Connection", "Upgrade", "Sec-WebSocket-Accept", "x"], ctx("host"), true)).toEqual([
      ["Upgrade", "websocket"],
      ["Connection", "Upgrade"],
      ["Sec-WebSocket-Accept", "x"],
    ]);
  });

  it("rewrites cookie paths under the prefix", () => {
    const prefix = `/preview/${SID}/8080`;
    expect(rewriteSetCookie("s=1; path=/admin; HttpOnly; SameSite=Lax", prefix)).toBe(`s=1; Path=${prefix}/admin; HttpOnly; SameSite=Lax`);
    expect(rewriteSetCookie("s=1; Path", prefix)).toBe(`s=1; Path=${prefix}/`);
    expect(rewriteSetCookie("s=1; Path=relative", prefix)).toBe(`s=1; Path=${prefix}/`);
    expect(rewriteSetCookie("s=1", prefix)).toBe("s=1");
    for (const bad of ["shipshape_owner=x", " shipshape_preview=x; Path=/", "__Host-shipshape_preview=x", "shipshape_instructor=x", "Shipshape_owner=x", "novalue", "=x"]) {
      expect(rewriteSetCookie(bad, prefix)).toBeUndefined();
    }
  });
});

describe("who may open a preview", () => {
  const subject: PreviewSubject = { sessionId: SID, ownerId: "owner1", workshopId: "w1", port: 8080 };

  it("lets the owner in and nobody else by default", () => {
    expect(authorizePreview(subject, { ownerId: "owner1", cookies: undefined })).toEqual({ allow: true, role: "owner" });
    expect(authorizePreview(subject, { ownerId: "owner2", cookies: undefined })).toEqual({ allow: false, reason: "not the sandbox's owner" });
    expect(authorizePreview(subject, { ownerId: undefined, cookies: undefined })).toEqual({ allow: false, reason: "no owner cookie" });
  });

  it("takes more rules, e.g. the workshop's instructor", () => {
    const instructorRule: PreviewAccessRule = (s, v) =>
      s.workshopId === "w1" && cookieValues(v.cookies, "shipshape_instructor")[0] === "signed" ? { allow: true, role: "instructor" } : undefined;
    const denyPort: PreviewAccessRule = (s) => (s.port === 22 ? { allow: false, reason: "port 22 is closed" } : undefined);
    const rules = [denyPort, ownerRule, instructorRule];
    const teacher = { ownerId: "teacher", cookies: "shipshape_instructor=signed" };
    expect(authorizePreview(subject, teacher, rules)).toEqual({ allow: true, role: "instructor" });
    expect(authorizePreview({ ...subject, port: 22 }, { ownerId: "owner1", cookies: undefined }, rules)).toEqual({ allow: false, reason: "port 22 is closed" });
    expect(authorizePreview({ ...subject, workshopId: undefined }, teacher, rules)).toMatchObject({ allow: false });
  });
});
