// One publish or play session with the relay: an RTCPeerConnection negotiated over HTTP
// (WHIP/WHEP style) with the grant signaling hands out. It knows how to (re)negotiate and
// close itself and how to sample its statistics; the media controller decides when.
//
// It talks to the rest of the SDK only through `link`:
//   request(type, data) → Promise   a signaling request (waits through a reconnect)
//   rtcConfiguration(reply)         the RTCPeerConnection settings for a signaling reply
//   onPathDown()                    its peer connection failed or disconnected
//   logger

import { SdkError, MediaKind, MEDIA_RECOVERY_GRACE_MS, RELAY_DELETE_WAIT_MS, BITRATE_RETRY_MS } from "./constants.js";
import { sdkError, serverError } from "./errors.js";
import { qualityFromStats } from "./quality.js";
import { now, sleep } from "./util.js";

const HTTP_CREATED = 201;

/** POSTs the offer to the relay; returns the SDP answer and the session URL for DELETE. */
export async function exchangeOffer(url, grant, offerSdp) {
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      mode: "cors",
      headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${grant}` },
      body: offerSdp,
    });
  } catch (err) {
    throw sdkError(SdkError.MEDIA_FAILED, `cannot reach the relay at ${url}: ${err.message}`);
  }
  const body = await response.text();
  if (response.status !== HTTP_CREATED) {
    let error = { code: SdkError.MEDIA_FAILED, message: `relay answered HTTP ${response.status}` };
    try {
      error = JSON.parse(body);
    } catch (_) {
      /* not JSON: keep the HTTP status */
    }
    throw serverError(error);
  }
  const location = response.headers.get("Location");
  return { answer: body, sessionUrl: location ? new URL(location, url).toString() : null };
}

/** Ends a relay session (its `Location`); resolves when done or after a moment, never rejects. */
export function endRelaySession(sessionUrl) {
  if (!sessionUrl) return Promise.resolve();
  const request = fetch(sessionUrl, { method: "DELETE", mode: "cors" }).catch(() => {});
  return Promise.race([request, sleep(RELAY_DELETE_WAIT_MS)]);
}

/** Puts `codecName` first in a video transceiver's codec list (where the browser lets it). */
export function preferCodec(transceiver, codecName) {
  if (!codecName || typeof RTCRtpReceiver === "undefined" || !RTCRtpReceiver.getCapabilities) return;
  if (typeof transceiver.setCodecPreferences !== "function") return;
  const caps = RTCRtpReceiver.getCapabilities("video");
  if (!caps) return;
  const wanted = `video/${codecName}`.toLowerCase();
  const first = caps.codecs.filter((c) => c.mimeType.toLowerCase() === wanted);
  if (!first.length) return;
  const rest = caps.codecs.filter((c) => c.mimeType.toLowerCase() !== wanted);
  try {
    transceiver.setCodecPreferences(first.concat(rest));
  } catch (_) {
    /* older browsers: keep the default order */
  }
}

/** Caps a sender's bitrate (kbit/s); applied once its transport exists. */
export function limitBitrate(sender, kbps) {
  if (!kbps || !sender.getParameters) return;
  // Before the transport exists, encodings may be empty.
  const apply = () => {
    const params = sender.getParameters();
    if (!params.encodings || !params.encodings.length) params.encodings = [{}];
    // The last encoding: the only one, or a simulcast stream's biggest layer.
    params.encodings[params.encodings.length - 1].maxBitrate = kbps * 1000;
    return sender.setParameters(params);
  };
  Promise.resolve()
    .then(apply)
    .catch(() => setTimeout(() => apply().catch(() => {}), BITRATE_RETRY_MS));
}

/**
 * A negotiation's lifetime: cancelled when the session stops or a newer negotiation starts,
 * so every await of an older one can tell it has been superseded.
 */
class Attempt {
  constructor() {
    this.cancelled = false;
  }
  cancel() {
    this.cancelled = true;
  }
  /** Throws CANCELLED once the attempt is cancelled. */
  check() {
    if (this.cancelled) throw sdkError(SdkError.CANCELLED, "stopped");
  }
}

export class MediaSession {
  /**
   * @param {{request: Function, rtcConfiguration: Function, onPathDown: Function, logger: Logger}} link
   * @param {"publish"|"play"} kind
   * @param {string} streamID
   */
  constructor(link, kind, streamID) {
    this.link = link;
    this.kind = kind;
    this.streamID = streamID;
    this.pc = null;
    this.sessionUrl = null;
    this.stopped = false;
    this.negotiating = false;
    this.retry = false;
    this.failedSince = 0;
    this.lastStats = null;
    this.prevCounters = null;
    this._attempt = new Attempt();
  }

  /** Asks signaling for a grant, then negotiates a fresh peer connection with the relay. */
  async negotiate(signalingRequest, setupPc) {
    this.retry = false;
    this._attempt.cancel();
    const attempt = (this._attempt = new Attempt());
    if (this.stopped) attempt.cancel();
    const reply = await this.link.request(signalingRequest.type, signalingRequest.data);
    attempt.check();
    // The relay must have let go of the old session before a new one takes the stream.
    await this.close();
    attempt.check();
    let pc;
    try {
      pc = new RTCPeerConnection(this.link.rtcConfiguration(reply));
    } catch (err) {
      throw sdkError(SdkError.MEDIA_FAILED, `the browser refused the ICE servers: ${err.message}`);
    }
    this.pc = pc;
    this.failedSince = 0;
    setupPc(pc);
    pc.addEventListener("connectionstatechange", () => this._onConnectionState(pc, attempt));
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    // No wait for ICE gathering: the relay is ICE-lite and learns this side's address from
    // its connectivity checks (peer-reflexive), so candidates in the offer are not needed;
    // through TURN that address is the TURN server's relayed one.
    attempt.check();
    const { answer, sessionUrl } = await exchangeOffer(reply.url, reply.grant, pc.localDescription.sdp);
    if (attempt.cancelled) {
      endRelaySession(sessionUrl);
      attempt.check();
    }
    this.sessionUrl = sessionUrl;
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
    return reply;
  }

  /** Stops for good: cancels a negotiation in flight and closes the connection. */
  stop() {
    this.stopped = true;
    this._attempt.cancel();
    return this.close();
  }

  _onConnectionState(pc, attempt) {
    if (attempt.cancelled || this.pc !== pc) return;
    const state = pc.connectionState;
    this.link.logger.debug(this.kind, this.streamID, "peer connection", state);
    if (state === "failed" || state === "disconnected") {
      if (!this.failedSince) this.failedSince = now();
      this.link.onPathDown();
    } else if (state === "connected") {
      this.failedSince = 0;
    }
  }

  /** True when the media path has been down long enough that it should be renegotiated. */
  needsRecovery() {
    if (this.stopped) return false;
    if (this.retry) return true;
    if (!this.pc) return false;
    const state = this.pc.connectionState;
    if (state === "failed" || state === "closed") return true;
    return state === "disconnected" && this.failedSince && now() - this.failedSince > MEDIA_RECOVERY_GRACE_MS;
  }

  /** Closes the peer connection and ends the relay session; resolves once the relay knows. */
  close() {
    if (this.pc) {
      const pc = this.pc;
      this.pc = null;
      try {
        pc.close();
      } catch (_) {
        /* already closed */
      }
    }
    const sessionUrl = this.sessionUrl;
    this.sessionUrl = null;
    return endRelaySession(sessionUrl);
  }

  /** Reads `getStats` into the ZEGO-shaped quality record (null for the first sample). */
  async sampleQuality() {
    if (!this.pc) return null;
    let report;
    try {
      report = await this.pc.getStats();
    } catch (_) {
      return null;
    }
    const source = this.kind === MediaKind.PUBLISH ? this.localStream : null;
    const localMute = source
      ? {
          video: source.getVideoTracks().some((t) => !t.enabled),
          audio: source.getAudioTracks().some((t) => !t.enabled),
        }
      : null;
    const { stats, record, counters } = qualityFromStats(this.kind, report.values(), this.prevCounters, now(), localMute);
    this.prevCounters = counters;
    this.lastStats = record;
    return stats;
  }
}
