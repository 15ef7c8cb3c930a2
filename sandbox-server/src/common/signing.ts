import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * Signed identifiers. The owner cookie says which browser this is; a session token binds a
 * session to that browser. Both are HMAC-SHA256 over the value with the server's secret.
 */
export class Signer {
  private readonly key: Buffer;

  constructor(secret: string) {
    this.key = Buffer.from(secret, "utf8");
  }

  sign(value: string): string {
    return `${value}.${this.mac(value)}`;
  }

  /** The value when the signature is valid, otherwise undefined. */
  verify(signed: string | undefined): string | undefined {
    if (!signed) return undefined;
    const dot = signed.lastIndexOf(".");
    if (dot <= 0) return undefined;
    const value = signed.slice(0, dot);
    const given = Buffer.from(signed.slice(dot + 1));
    const expected = Buffer.from(this.mac(value));
    return given.length === expected.length && timingSafeEqual(given, expected) ? value : undefined;
  }

  /**
   * A signer with its own key for another purpose (the port preview's tokens), so a value signed
   * for one purpose is never accepted as another (a preview token as an owner cookie, say).
   */
  derive(purpose: string): Signer {
    return new Signer(createHmac("sha256", this.key).update(`derive:${purpose}`).digest("base64url"));
  }

  sessionToken(sessionId: string, ownerId: string): string {
    return this.sign(`${sessionId}:${ownerId}`);
  }

  /** The session id, when the token is valid and was issued to this owner. */
  verifySessionToken(token: string | undefined, ownerId: string): string | undefined {
    const value = this.verify(token);
    if (!value) return undefined;
    const [sessionId, owner] = value.split(":");
    return owner === ownerId && sessionId ? sessionId : undefined;
  }

  private mac(value: string): string {
    return createHmac("sha256", this.key).update(value).digest("base64url");
  }
}

export function newId(bytes = 12): string {
  return randomBytes(bytes).toString("base64url").replace(/[-_]/g, "x").toLowerCase();
}
