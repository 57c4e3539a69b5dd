// Small helpers every module may use.

import { PROTOCOL_VERSION } from "./constants.js";

export const hasWindow = typeof window !== "undefined";
export const now = () => Date.now();
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function isNonEmptyString(value) {
  return typeof value === "string" && value.length > 0;
}

/** The websocket URL with the protocol version in its query (`base`: the page's URL). */
export function signalingUrl(server, base) {
  const url = new URL(server, base);
  if (url.protocol === "http:") url.protocol = "ws:";
  if (url.protocol === "https:") url.protocol = "wss:";
  if (!url.searchParams.has("v")) url.searchParams.set("v", String(PROTOCOL_VERSION));
  return url.toString();
}

/**
 * Copies the methods and accessors of `feature`'s prototype onto `target`'s: the engine is
 * one class to pages, assembled from one module per feature area.
 */
export function attachFeature(target, feature) {
  for (const name of Object.getOwnPropertyNames(feature.prototype)) {
    if (name === "constructor") continue;
    if (Object.prototype.hasOwnProperty.call(target.prototype, name)) {
      throw new Error(`feature ${feature.name} redefines ${target.name}.${name}`);
    }
    Object.defineProperty(target.prototype, name, Object.getOwnPropertyDescriptor(feature.prototype, name));
  }
}
