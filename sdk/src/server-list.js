// The signaling servers an engine may use. ZEGO's constructor takes one URL or a list of
// them (ZEGO advises a list: a backup address survives a weak or blocked network). The list
// is tried in order: a server that cannot be connected to hands over to the next one, at
// login and on every reconnect; the one that worked stays in use until it fails.

import { SdkError } from "./constants.js";
import { sdkError } from "./errors.js";
import { isNonEmptyString } from "./util.js";

/** The constructor's `server` argument as a non-empty list of URLs; throws INVALID_ARGUMENT. */
export function serverUrls(server) {
  const list = Array.isArray(server) ? server : [server];
  if (!list.length || !list.every(isNonEmptyString)) {
    throw sdkError(SdkError.INVALID_ARGUMENT, "server must be the websocket URL or a non-empty array of them");
  }
  return list.slice();
}

/** Which server of the list is in use, and the failover to the next one. */
export class ServerRotation {
  /** @param {string[]} urls from `serverUrls` */
  constructor(urls) {
    this.urls = urls;
    this.index = 0;
  }

  /** The server to connect to now. */
  get current() {
    return this.urls[this.index];
  }

  /** How many servers there are (a login tries each once before it gives up). */
  get size() {
    return this.urls.length;
  }

  /** The current server could not be reached: the next one (after the last, the first) is tried. */
  failover() {
    this.index = (this.index + 1) % this.urls.length;
    return this.current;
  }
}
