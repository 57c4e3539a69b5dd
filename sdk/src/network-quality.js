// Network quality on ZEGO's scale (`QualityGrade`: -1 unknown, 0 excellent, 1 good,
// 2 middle, 3 poor, 4 die): a link's level from its loss, round trip and jitter — the same
// thresholds the server applies to the relay's measurements (docs/PROTOCOL.md,
// `reportQuality`) — and the table of the room's users behind `networkQuality`. Pure:
// unit-tested in Node.

export const QualityLevel = Object.freeze({ UNKNOWN: -1, EXCELLENT: 0, GOOD: 1, MIDDLE: 2, POOR: 3, DIE: 4 });

/** Inclusive upper bounds of excellent, good, middle and poor; above the last is die. */
const LOSS_BOUNDS = [0.01, 0.03, 0.08, 0.2];
const RTT_MS_BOUNDS = [100, 200, 400, 800];
const JITTER_MS_BOUNDS = [20, 50, 100, 200];

function levelAgainst(bounds, value) {
  return bounds.filter((bound) => value > bound).length;
}

/**
 * The level of one link: the worst of the measures present (unknown when none is).
 * @param {{loss?: number, rttMs?: number, jitterMs?: number}} sample loss as a fraction
 */
export function linkLevel({ loss, rttMs, jitterMs } = {}) {
  const levels = [];
  if (typeof loss === "number" && Number.isFinite(loss)) levels.push(levelAgainst(LOSS_BOUNDS, loss));
  if (typeof rttMs === "number" && Number.isFinite(rttMs)) levels.push(levelAgainst(RTT_MS_BOUNDS, rttMs));
  if (typeof jitterMs === "number" && Number.isFinite(jitterMs)) levels.push(levelAgainst(JITTER_MS_BOUNDS, jitterMs));
  return levels.length ? Math.max(...levels) : QualityLevel.UNKNOWN;
}

/** The worse of known levels; unknown when none is known. */
export function worstLevel(...levels) {
  const known = levels.filter((l) => typeof l === "number" && l >= 0);
  return known.length ? Math.max(...known) : QualityLevel.UNKNOWN;
}

/** The link sample of a ZEGO-shaped publish or play quality record (`publishQualityUpdate` / `playQualityUpdate`). */
export function sampleOfStats(kind, stats) {
  const loss = Math.max(stats.video.videoPacketsLostRate || 0, stats.audio.audioPacketsLostRate || 0);
  const sample = { loss, rttMs: stats.currentRoundTripTime };
  // A sender's own statistics carry no jitter; a receiver's audio jitter is the link's.
  if (kind === "play" && stats.audio.audioJitter > 0) sample.jitterMs = stats.audio.audioJitter;
  return sample;
}

/**
 * This page's own levels: upstream from what it publishes, downstream from what it plays
 * (each the worst of its sessions; unknown without any).
 * @param {Array<{kind: "publish"|"play", stats: object}>} samples the latest record of each session
 */
export function ownLevels(samples) {
  const of = (kind) => worstLevel(...samples.filter((s) => s.kind === kind).map((s) => linkLevel(sampleOfStats(kind, s.stats))));
  return { upstream: of("publish"), downstream: of("play") };
}

/**
 * The room's users' levels as the server last told them (`networkQuality` events carry the
 * users whose level changed), and this page's own measurement: what `networkQuality` reports.
 */
export class NetworkBoard {
  constructor() {
    this.users = new Map(); // userID → {upstream, downstream} from the server
  }

  /** A server batch: `[{userID, upstream, downstream}]`. */
  apply(qualityList) {
    for (const entry of qualityList || []) {
      if (!entry || typeof entry.userID !== "string") continue;
      this.users.set(entry.userID, { upstream: toLevel(entry.upstream), downstream: toLevel(entry.downstream) });
    }
  }

  /**
   * `[userID, upstream, downstream]` of every user to report now: this page's user first
   * (the worse of its own measurement and the server's view of it), then the others. A user
   * the server said nothing is known of any more is reported once more as unknown, then dropped.
   */
  report(selfID, own) {
    const rows = [];
    const told = this.users.get(selfID);
    rows.push([selfID, worstLevel(own.upstream, told && told.upstream), worstLevel(own.downstream, told && told.downstream)]);
    for (const [userID, levels] of this.users) {
      if (userID === selfID) continue;
      rows.push([userID, levels.upstream, levels.downstream]);
      if (levels.upstream === QualityLevel.UNKNOWN && levels.downstream === QualityLevel.UNKNOWN) this.users.delete(userID);
    }
    return rows;
  }

  clear() {
    this.users.clear();
  }
}

function toLevel(value) {
  return Number.isInteger(value) && value >= QualityLevel.UNKNOWN && value <= QualityLevel.DIE ? value : QualityLevel.UNKNOWN;
}
