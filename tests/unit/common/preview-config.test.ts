import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../../sandbox-server/src/config.ts";

describe("preview configuration", () => {
  it("leaves the preview domain to be derived (docs/preview.md), with one-hour share links", () => {
    const c = loadConfig({ SHIPSHAPE_DATA_DIR: "/nonexistent" });
    expect(c.SHIPSHAPE_PREVIEW_DOMAIN).toBeUndefined();
    expect(c.SHIPSHAPE_PREVIEW_SCHEME).toBe("https");
    expect(c.SHIPSHAPE_PREVIEW_SHARE_TTL).toBe(3600_000);
  });

  it("reads a preview domain, with a port for local tests, and treats an empty one as unset", () => {
    expect(loadConfig({ SHIPSHAPE_PREVIEW_DOMAIN: " Preview.Example.NET " }).SHIPSHAPE_PREVIEW_DOMAIN).toBe("preview.example.net");
    expect(loadConfig({ SHIPSHAPE_PREVIEW_DOMAIN: "preview.localhost:4321" }).SHIPSHAPE_PREVIEW_DOMAIN).toBe("preview.localhost:4321");
    expect(loadConfig({ SHIPSHAPE_PREVIEW_DOMAIN: "" }).SHIPSHAPE_PREVIEW_DOMAIN).toBeUndefined();
  });

  it("names the variable when the domain is not a host name", () => {
    for (const bad of ["https://preview.example.net", "*.preview.example.net", "preview.example.net/", "-bad.example.net", "a b"]) {
      expect(() => loadConfig({ SHIPSHAPE_PREVIEW_DOMAIN: bad })).toThrow(ConfigError);
      try {
        loadConfig({ SHIPSHAPE_PREVIEW_DOMAIN: bad });
      } catch (e) {
        expect((e as Error).message).toContain(
          "SHIPSHAPE_PREVIEW_DOMAIN: write a host name such as preview.example.org (a port may follow: preview.localhost:4321), or off",
        );
      }
    }
    expect(() => loadConfig({ SHIPSHAPE_PREVIEW_SCHEME: "ftp" })).toThrow(/SHIPSHAPE_PREVIEW_SCHEME/);
    expect(() => loadConfig({ SHIPSHAPE_PREVIEW_SHARE_TTL: "forever" })).toThrow(/SHIPSHAPE_PREVIEW_SHARE_TTL/);
  });
});
