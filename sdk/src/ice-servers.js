// The ICE servers of a peer connection: Huddle's own (handed out with each publish and play)
// and the page's (`setTurnServer`). Pure.

/**
 * ZEGO's `setTurnServer` list (`{url, username, credential}`) as RTCIceServers, or `{error}`
 * for an entry without a `turn:`/`turns:`/`stun:` URL.
 */
export function pageIceServers(turnServerList) {
  if (!Array.isArray(turnServerList)) return { error: "turnServerList must be an array" };
  const servers = [];
  for (const entry of turnServerList) {
    const url = entry && entry.url;
    if (typeof url !== "string" || !/^(turns?|stuns?):/i.test(url)) {
      return { error: `not a TURN or STUN URL: ${JSON.stringify(url)}` };
    }
    const server = { urls: url };
    if (typeof entry.username === "string") server.username = entry.username;
    if (typeof entry.credential === "string") server.credential = entry.credential;
    servers.push(server);
  }
  return { servers };
}

/** Huddle's servers first, then the page's ones whose URLs Huddle did not hand out already. */
export function mergeIceServers(huddle, page) {
  const own = Array.isArray(huddle) ? huddle : [];
  const known = new Set(own.flatMap((s) => (Array.isArray(s.urls) ? s.urls : [s.urls])));
  return own.concat((page || []).filter((s) => !known.has(s.urls)));
}
