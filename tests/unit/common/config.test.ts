import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, parseDuration, parseSize } from "../../../sandbox-server/src/config.ts";

describe("configuration", () => {
  it("has working defaults", () => {
    const c = loadConfig({ SHIPSHAPE_DATA_DIR: "/nonexistent" });
    expect(c.PORT).toBe(4321);
    expect(c.SHIPSHAPE_SESSION_TTL).toBe(2 * 3600_000);
    expect(c.SHIPSHAPE_SANDBOX_MEMORY).toBe(1024 ** 3);
    expect(c.securityTier).toBe("classroom");
    expect(c.sandboxImage).toBe("shipshape/sandbox:latest");
  });

  it("chooses the isolated tier when a user-namespaced runtime is configured", () => {
    expect(loadConfig({ SHIPSHAPE_SANDBOX_RUNTIME: "sysbox-runc" }).securityTier).toBe("isolated");
  });

  it("names the variable and the fix when a value is wrong", () => {
    expect(() => loadConfig({ PORT: "eighty", SHIPSHAPE_IDLE_TIMEOUT: "soon" })).toThrow(ConfigError);
    try {
      loadConfig({ PORT: "eighty", SHIPSHAPE_IDLE_TIMEOUT: "soon" });
    } catch (e) {
      const text = (e as Error).message;
      expect(text).toContain("PORT");
      expect(text).toContain("SHIPSHAPE_IDLE_TIMEOUT");
      expect(text).toContain('"soon" is not a duration; write it like 90s, 30m or 2h');
    }
  });

  it("parses durations and sizes the way operators write them", () => {
    expect(parseDuration("90s")).toBe(90_000);
    expect(parseDuration("1.5h")).toBe(5_400_000);
    expect(parseSize("512m")).toBe(512 * 1024 ** 2);
    expect(parseSize("2GiB")).toBe(2 * 1024 ** 3);
    expect(() => parseSize("lots")).toThrow(/not a size/);
  });
});
