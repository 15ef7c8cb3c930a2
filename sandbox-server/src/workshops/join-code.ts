import { randomBytes } from "node:crypto";

/**
 * Join codes are read aloud and copied from a projector: six characters from an alphabet without
 * the look-alikes 0/O and 1/I. 32 symbols, so one random byte's low five bits pick one without bias.
 */
export const JOIN_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
export const JOIN_CODE_LENGTH = 6;

export function newJoinCode(random: (n: number) => Uint8Array = randomBytes): string {
  return Array.from(random(JOIN_CODE_LENGTH), (b) => JOIN_CODE_ALPHABET[b & 31]).join("");
}

/**
 * What a learner typed, as a code: case, spaces and dashes do not matter ("k7q-x2m").
 * undefined when it cannot be a code at all.
 */
export function normalizeJoinCode(input: string): string | undefined {
  const code = input.toUpperCase().replace(/[\s-]+/g, "");
  if (code.length !== JOIN_CODE_LENGTH) return undefined;
  for (const c of code) if (!JOIN_CODE_ALPHABET.includes(c)) return undefined;
  return code;
}
