/**
 * Base64 encoding of bytes (the standard alphabet, with padding), as the
 * guest's `base64 -d` reads it.
 *
 * @module
 */

/** Encodes bytes as base64. */
export function encodeBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}
