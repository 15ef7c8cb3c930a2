import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../../sandbox-server/src/config.ts";
import { PublicOrigin } from "../../../sandbox-server/src/common/public-origin.ts";
import { upstreamRequestHeaders } from "../../../sandbox-server/src/preview/preview-headers.ts";
import {
  choosePreviewForm,
  isLoopbackHost,
  isPreviewHost,
  parsePreviewHost,
  PATH_FORM_WARNING,
  previewAuthUrl,
  previewOrigin,
} from "../../../sandbox-server/src/preview/preview-routes.ts";

const SID = "k3dqw3amgs0eqfuw";

describe("which origin previews run on", () => {
  it("gives each preview its own *.localhost origin when the course is on this machine", () => {
    const form = choosePreviewForm(undefined, "https", "http://localhost:4321");
    expect(form).toEqual({ form: "host", origin: "localhost", domain: { host: "localhost:4321", hostname: "localhost", scheme: "http", claimsBareHost: false } });
    if (form.form !== "host") throw new Error("unreachable");
    expect(previewOrigin(form.domain, SID, 8080)).toBe(`http://p8080-${SID}.localhost:4321`);
    expect(previewAuthUrl(form.domain, { sessionId: SID, port: 8888 }, "t")).toBe(`http://p8888-${SID}.localhost:4321/__shipshape/auth?token=t`);
  });

  it("treats loopback addresses like localhost, and keeps the public URL's scheme and port", () => {
    for (const [publicUrl, host, scheme] of [
      ["http://127.0.0.1:8080", "localhost:8080", "http"],
      ["http://[::1]:4321", "localhost:4321", "http"],
      ["http://localhost", "localhost", "http"],
      ["https://localhost", "localhost", "https"],
      ["http://course.localhost:4321", "localhost:4321", "http"],
    ] as const) {
      const form = choosePreviewForm(undefined, "https", publicUrl);
      expect({ publicUrl, form }).toMatchObject({ publicUrl, form: { form: "host", domain: { host, scheme } } });
    }
  });

  it("falls back to the path form, with a warning that names the risk, for a course on a LAN address or a domain", () => {
    for (const publicUrl of ["http://192.168.1.20:4321", "https://docker.example.org", "http://10.0.0.5", "http://127.0.0.1.nip.io"]) {
      expect(choosePreviewForm(undefined, "https", publicUrl)).toEqual({ form: "path", warning: PATH_FORM_WARNING });
    }
    expect(PATH_FORM_WARNING).toContain("call the course's API as whoever opens the preview");
    expect(PATH_FORM_WARNING).toContain("SHIPSHAPE_PREVIEW_DOMAIN");
  });

  it("uses a configured domain and scheme, wherever the course is, and the path form only when told off", () => {
    expect(choosePreviewForm("example-preview.net", "https", "http://localhost:4321")).toMatchObject({
      form: "host",
      origin: "configured",
      domain: { host: "example-preview.net", scheme: "https", claimsBareHost: true },
    });
    expect(choosePreviewForm("off", "https", "http://localhost:4321")).toEqual({ form: "path", warning: PATH_FORM_WARNING });
    expect(loadConfig({ SHIPSHAPE_PREVIEW_DOMAIN: " OFF " }).SHIPSHAPE_PREVIEW_DOMAIN).toBe("off");
  });

  it("leaves the bare localhost to the course, and claims every p<port>-<session>.localhost", () => {
    const form = choosePreviewForm(undefined, "https", "http://localhost:4321");
    if (form.form !== "host") throw new Error("expected the host form");
    expect(isPreviewHost("localhost:4321", form.domain)).toBe(false);
    expect(isPreviewHost("LOCALHOST", form.domain)).toBe(false);
    expect(isPreviewHost(`p8080-${SID}.localhost:4321`, form.domain)).toBe(true);
    expect(isPreviewHost("junk.localhost:4321", form.domain)).toBe(true);
    expect(isPreviewHost("127.0.0.1:4321", form.domain)).toBe(false);
    expect(isPreviewHost("evil-localhost:4321", form.domain)).toBe(false);
    expect(parsePreviewHost(`p8080-${SID}.localhost:4321`, form.domain.hostname)).toEqual({ ok: true, target: { sessionId: SID, port: 8080 } });
  });

  it("knows which host names a browser resolves to this machine by itself", () => {
    for (const h of ["localhost", "a.localhost", "127.0.0.1", "127.1.2.3", "[::1]", "::1"]) expect({ h, local: isLoopbackHost(h) }).toEqual({ h, local: true });
    for (const h of ["localhost.example.org", "192.168.1.2", "128.0.0.1", "example.org", "::2"]) expect({ h, local: isLoopbackHost(h) }).toEqual({ h, local: false });
  });
});

describe("the Origin an app on its own preview host sees", () => {
  const own = `http://p8888-${SID}.localhost:4321`;
  const ctx = { mode: "host" as const, port: 8888, publicHost: `p8888-${SID}.localhost:4321`, publicProto: "http" as const, prefix: undefined, upgrade: true, previewOrigin: own };

  it("is its own (http://localhost:<port>, like its Host) when the page is the app's, so Jupyter's Origin-equals-Host check passes", () => {
    const out = upstreamRequestHeaders({ origin: own, upgrade: "websocket", connection: "Upgrade" }, ctx);
    expect([out.host, out.origin]).toEqual(["localhost:8888", "http://localhost:8888"]);
  });

  it("stays foreign when the page is anyone else's, so the app's own checks still refuse it", () => {
    for (const origin of ["http://evil.example", "http://localhost:4321", `http://p8080-${SID}.localhost:4321`, "null"]) {
      expect({ origin, seen: upstreamRequestHeaders({ origin }, ctx).origin }).toEqual({ origin, seen: origin });
    }
    expect(upstreamRequestHeaders({ origin: own }, { ...ctx, mode: "path", previewOrigin: undefined }).origin).toBe(own);
  });
});

describe("SHIPSHAPE_PUBLIC_URL and the preview WebSocket limits", () => {
  it("defaults the public URL to this machine on the listening port", () => {
    const c = loadConfig({ SHIPSHAPE_DATA_DIR: "/nonexistent" });
    expect(c.SHIPSHAPE_PUBLIC_URL).toBeUndefined();
    const origin = new PublicOrigin({ configured: c.publicUrl, extraOrigins: [], otherHost: () => false });
    origin.listening(4321);
    expect(origin.origin).toBe("http://localhost:4321");
    expect(loadConfig({ SHIPSHAPE_PUBLIC_URL: "https://Docker.Example.org/" }).publicUrl).toBe("https://docker.example.org");
  });

  it("names the variable when the public URL is not an http(s) origin", () => {
    for (const bad of ["docker.example.org", "ftp://x.example", "https://x.example/course", "https://x.example/?a=1", "https://u:p@x.example"]) {
      expect(() => loadConfig({ SHIPSHAPE_PUBLIC_URL: bad })).toThrow(ConfigError);
      expect(() => loadConfig({ SHIPSHAPE_PUBLIC_URL: bad })).toThrow(/SHIPSHAPE_PUBLIC_URL: "[^"]+" (is not|must)/);
    }
  });

  it("caps preview WebSockets per owner and closes idle ones, both configurable", () => {
    const c = loadConfig({});
    expect(c.SHIPSHAPE_PREVIEW_SOCKETS_PER_OWNER).toBe(64);
    expect(c.SHIPSHAPE_PREVIEW_SOCKET_IDLE).toBe(600_000);
    const set = loadConfig({ SHIPSHAPE_PREVIEW_SOCKETS_PER_OWNER: "3", SHIPSHAPE_PREVIEW_SOCKET_IDLE: "2s" });
    expect([set.SHIPSHAPE_PREVIEW_SOCKETS_PER_OWNER, set.SHIPSHAPE_PREVIEW_SOCKET_IDLE]).toEqual([3, 2000]);
    expect(() => loadConfig({ SHIPSHAPE_PREVIEW_SOCKETS_PER_OWNER: "0" })).toThrow(/SHIPSHAPE_PREVIEW_SOCKETS_PER_OWNER/);
    expect(() => loadConfig({ SHIPSHAPE_PREVIEW_SOCKET_IDLE: "soon" })).toThrow(/SHIPSHAPE_PREVIEW_SOCKET_IDLE/);
  });
});
