import { describe, expect, it } from "vitest";
import { parseClientMessage } from "../../../contracts/terminal-protocol.ts";

describe("terminal protocol messages", () => {
  it("accepts a hello and fills in defaults", () => {
    const r = parseClientMessage(JSON.stringify({ type: "hello", token: "abc" }));
    expect(r).toEqual({ ok: true, message: { type: "hello", token: "abc", terminal: "main", cols: 80, rows: 24 } });
  });

  it("clamps absurd sizes instead of passing them to the TTY", () => {
    const r = parseClientMessage(JSON.stringify({ type: "resize", cols: 1e9, rows: 0 }));
    expect(r).toEqual({ ok: true, message: { type: "resize", cols: 500, rows: 1 } });
  });

  it("explains malformed JSON, unknown types and bad fields", () => {
    expect(parseClientMessage("{")).toMatchObject({ ok: false, code: "malformed_json" });
    expect(parseClientMessage('"hello"')).toMatchObject({ ok: false, code: "unknown_type" });
    expect(parseClientMessage('{"type":"exec"}')).toMatchObject({ ok: false, code: "unknown_type", message: expect.stringContaining('"exec"') });
    expect(parseClientMessage('{"type":"hello","token":"t","terminal":"../etc"}')).toMatchObject({
      ok: false,
      code: "invalid_message",
      message: expect.stringContaining("terminal"),
    });
    expect(parseClientMessage('{"type":"ack","bytes":-1}')).toMatchObject({ ok: false, code: "invalid_message" });
  });
});
