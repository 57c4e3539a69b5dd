// The server's clock as this page knows it (`getNetworkTimeInfo`): every `ping` reply carries
// the server's time (Unix ms); the sample with the shortest round trip sets the offset, and
// half that round trip bounds the error. Pure: times come in as arguments.

/** Samples older than this give way to a newer one even with a longer round trip (drift). */
const SAMPLE_MAX_AGE_MS = 5 * 60 * 1000;

export class NetworkClock {
  constructor() {
    this.best = null; // {offset, rtt, at}
  }

  /** A ping sent at `sentAt`, answered with `serverTime`, received at `receivedAt` (local ms). */
  sample(sentAt, serverTime, receivedAt) {
    if (typeof serverTime !== "number" || !Number.isFinite(serverTime) || receivedAt < sentAt) return;
    const rtt = receivedAt - sentAt;
    const offset = serverTime + rtt / 2 - receivedAt;
    const stale = this.best && receivedAt - this.best.at > SAMPLE_MAX_AGE_MS;
    if (!this.best || stale || rtt <= this.best.rtt) this.best = { offset, rtt, at: receivedAt };
  }

  /** ZEGO's `{timestamp, maxDeviation}` at local time `nowMs`; timestamp 0 before any sample. */
  info(nowMs) {
    if (!this.best) return { timestamp: 0, maxDeviation: 0 };
    return { timestamp: Math.round(nowMs + this.best.offset), maxDeviation: Math.ceil(this.best.rtt / 2) };
  }
}
