import { describe, expect, it } from "vitest";
import {
  hostnameOf,
  isPreviewHost,
  parsePort,
  parsePreviewDomain,
  parsePreviewHost,
  parsePreviewPath,
  previewAuthUrl,
  previewOrigin,
  previewPath,
  rewriteLocation,
  safeNext,
  type LocationContext,
} from "../../../sandbox-server/src/preview/preview-routes.ts";

const SID = "abcdefgh12345678";

describe("preview ports", () => {
  it("accepts 1-65535 written plainly", () => {
    expect(parsePort("1")).toBe(1);
    expect(parsePort("8080")).toBe(8080);
    expect(parsePort("65535")).toBe(65535);
  });

  it("refuses everything else", () => {
    for (const text of ["0", "65536", "99999", "123456", "-1", "+80", "08080", "8080.0", "0x1f90", "1e3", " 80", "80 ", "", "８０"]) {
      expect({ text, port: parsePort(text) }).toEqual({ text, port: undefined });
    }
  });
});

describe("the path form /preview/<session>/<port>/…", () => {
  it("splits off the prefix and keeps the rest raw, query included", () => {
    expect(parsePreviewPath(`/preview/${SID}/8080/a/%2e%2e/b?x=%2f&y`)).toEqual({
      ok: true,
      target: { sessionId: SID, port: 8080, prefix: `/preview/${SID}/8080`, rest: "/a/%2e%2e/b?x=%2f&y" },
    });
    expect(parsePreviewPath(`/preview/${SID}/8080/`)).toMatchObject({ ok: true, target: { rest: "/" } });
  });

  it("says when the URL stops at the port (the slash is added by a redirect)", () => {
    expect(parsePreviewPath(`/preview/${SID}/8080`)).toMatchObject({ ok: true, target: { rest: "" } });
    expect(parsePreviewPath(`/preview/${SID}/8080?x=1`)).toMatchObject({ ok: true, target: { rest: "" } });
  });

  it("refuses session segments that are not session ids, without decoding them", () => {
    for (const url of [
      "/preview/../api/sessions",
      "/preview/%2e%2e/8080/",
      `/preview/${SID}%2f..%2fother/8080/`,
      `/preview/${SID.toUpperCase()}/8080/`,
      `/preview//${SID}/8080/`,
      `/preview/${SID}%00/8080/`,
      "/preview/short/8080/",
      `/preview/${"a".repeat(33)}/8080/`,
    ]) {
      expect(parsePreviewPath(url)).toMatchObject({ ok: false, reason: "session segment is not a session id" });
    }
  });

  it("refuses ports outside 1-65535 and missing ports", () => {
    expect(parsePreviewPath(`/preview/${SID}/0/`)).toEqual({ ok: false, reason: "port is not a number from 1 to 65535", sessionId: SID, port: "0" });
    expect(parsePreviewPath(`/preview/${SID}/65536/`)).toMatchObject({ ok: false, port: "65536" });
    expect(parsePreviewPath(`/preview/${SID}/../x/`)).toMatchObject({ ok: false, port: ".." });
    expect(parsePreviewPath(`/preview/${SID}/`)).toMatchObject({ ok: false, port: "" });
    expect(parsePreviewPath(`/preview/${SID}`)).toEqual({ ok: false, reason: "no port in the preview path", sessionId: SID });
  });

  it("only reads origin-form targets that start with the prefix", () => {
    expect(parsePreviewPath(`http://127.0.0.1:22/preview/${SID}/8080/`)).toMatchObject({ ok: false, reason: "not a /preview/ path" });
    expect(parsePreviewPath(`/api/../preview/${SID}/8080/`)).toMatchObject({ ok: false });
    expect(parsePreviewPath("/preview")).toMatchObject({ ok: false });
  });

  it("builds the link the port list shows", () => {
    expect(previewPath(SID, 8080)).toBe(`/preview/${SID}/8080/`);
  });
});

describe("the host form p<port>-<session>.<domain>", () => {
  const domain = parsePreviewDomain("preview.example.org", "https");

  it("reads the session and port from exactly one label under the domain", () => {
    expect(parsePreviewHost(`p8080-${SID}.preview.example.org`, domain.hostname)).toEqual({ ok: true, target: { sessionId: SID, port: 8080 } });
    expect(parsePreviewHost(`P8080-${SID.toUpperCase()}.Preview.Example.Org:443`, domain.hostname)).toEqual({
      ok: true,
      target: { sessionId: SID.toLowerCase(), port: 8080 },
    });
  });

  it("refuses everything else on the domain", () => {
    for (const host of [
      `p0-${SID}.preview.example.org`,
      `p65536-${SID}.preview.example.org`,
      `p08080-${SID}.preview.example.org`,
      `x.p8080-${SID}.preview.example.org`,
      `p8080-${SID}x.preview.example.org.evil`,
      `p8080_${SID}.preview.example.org`,
      `p8080-${SID}.preview.example.org:99999`,
      `p8080-${SID}.preview.example.org:80:80`,
      `user@p8080-${SID}.preview.example.org`,
      "preview.example.org",
      "",
    ]) {
      expect({ host, ok: parsePreviewHost(host, domain.hostname).ok }).toEqual({ host, ok: false });
    }
  });

  it("claims every Host on the domain, so none of them reaches the site", () => {
    expect(isPreviewHost("preview.example.org", domain)).toBe(true);
    expect(isPreviewHost(`junk.p1-x.preview.example.org:1`, domain)).toBe(true);
    expect(isPreviewHost("preview.example.org.evil.com", domain)).toBe(false);
    expect(isPreviewHost("notpreview.example.org", domain)).toBe(false);
    expect(isPreviewHost(undefined, domain)).toBe(false);
  });

  it("reads plain host[:port] Host headers only", () => {
    expect(hostnameOf("Example.org:8080")).toBe("example.org");
    expect(hostnameOf("example.org:65536")).toBeUndefined();
    expect(hostnameOf("a b")).toBeUndefined();
    expect(hostnameOf("[::1]:80")).toBeUndefined();
  });

  it("builds origins and token links, keeping a port in the domain", () => {
    expect(previewOrigin(domain, SID, 8080)).toBe(`https://p8080-${SID}.preview.example.org`);
    const local = parsePreviewDomain("preview.localhost:4321", "http");
    expect(local.hostname).toBe("preview.localhost");
    expect(previewAuthUrl(local, { sessionId: SID, port: 3000 }, "t:1.x", "/a?b=c")).toBe(
      `http://p3000-${SID}.preview.localhost:4321/__shipshape/auth?token=t%3A1.x&next=%2Fa%3Fb%3Dc`,
    );
    expect(previewAuthUrl(local, { sessionId: SID, port: 3000 }, "t")).toBe(`http://p3000-${SID}.preview.localhost:4321/__shipshape/auth?token=t`);
  });

  it("only continues to paths on the same host after the exchange", () => {
    expect(safeNext("/app?x=1")).toBe("/app?x=1");
    for (const next of [null, "", "app", "//evil.example/", "/\\evil.example", "https://evil.example/", "/a\nb", "/a\\b"]) {
      expect(safeNext(next)).toBe("/");
    }
  });
});

describe("upstream redirects", () => {
  const path: LocationContext = { mode: "path", port: 8080, sandboxAddress: "10.213.128.5", baseFor: (p) => `/preview/${SID}/${p}` };
  const host: LocationContext = { mode: "host", port: 8080, sandboxAddress: "10.213.128.5", baseFor: (p) => `https://p${p}-${SID}.preview.example.org` };

  it("points redirects to the sandbox's own origin at the preview", () => {
    expect(rewriteLocation("http://localhost:8080/login?next=/a#top", path)).toBe(`/preview/${SID}/8080/login?next=/a#top`);
    expect(rewriteLocation("http://127.0.0.1:8080/", host)).toBe(`https://p8080-${SID}.preview.example.org/`);
    expect(rewriteLocation("http://10.213.128.5:8080/x", host)).toBe(`https://p8080-${SID}.preview.example.org/x`);
    expect(rewriteLocation("//localhost:8080/x", path)).toBe(`/preview/${SID}/8080/x`);
  });

  it("sends another port of the sandbox to that port's preview, and a port-less one to this port", () => {
    expect(rewriteLocation("http://localhost:3000/api", path)).toBe(`/preview/${SID}/3000/api`);
    // nginx published as -p 8080:80 names its own port 80 by leaving the port out.
    expect(rewriteLocation("http://localhost/docs/", path)).toBe(`/preview/${SID}/8080/docs/`);
  });

  it("puts root-relative redirects under the prefix in the path form only", () => {
    expect(rewriteLocation("/login", path)).toBe(`/preview/${SID}/8080/login`);
    expect(rewriteLocation("/login", host)).toBe("/login");
    expect(rewriteLocation("login", path)).toBe("login");
  });

  it("leaves other origins and schemes alone", () => {
    for (const location of ["https://example.org/x", "https://localhost:8080/x", "http://localhost:0/x", "http://evil.example:8080/", "mailto:a@b.c"]) {
      expect(rewriteLocation(location, path)).toBe(location);
    }
  });
});
