//! Participant and stream minutes of an app over a time window, grouped by room, user or day.
//!
//! Exact rules (the README repeats them):
//! - The window is `[from, to)` in unix milliseconds; `to - from` is at most 366 days.
//! - Each session counts from its login to its logout, each stream from its start to its
//!   stop; an interval still open counts up to the moment of the query. Every interval is
//!   clipped to the window before anything is added.
//! - `participantMs` / `streamMs` are the exact sums of the clipped intervals of a group.
//! - `participantMinutes` / `streamMinutes` are those sums in minutes rounded **up** once per
//!   group: `ceil(ms / 60000)` (so 1 ms is 1 minute, 60 000 ms is 1 minute, 60 001 ms is 2).
//!   The total is rounded the same way from the total milliseconds, not summed from groups.
//! - `groupBy=day` splits intervals at UTC midnight; keys are `YYYY-MM-DD`.
//! - `sessions` / `streams` count the intervals that overlap the window at all;
//!   `bytesIn` / `bytesOut` add the relay byte counts of the streams that *stopped* inside it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::UsageError;
use crate::store::Store;

/// Longest window one query may cover.
pub const MAX_WINDOW_MS: i64 = 366 * DAY_MS;
const DAY_MS: i64 = 86_400_000;
const MINUTE_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    #[default]
    Room,
    User,
    Day,
}

#[derive(Debug, Clone)]
pub struct UsageQuery {
    pub app_id: u32,
    pub from_ms: i64,
    pub to_ms: i64,
    pub group_by: GroupBy,
}

/// One group's usage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageGroup {
    /// Room id, user id, or UTC day (`YYYY-MM-DD`); `"*"` for the total.
    pub key: String,
    pub participant_ms: i64,
    /// `ceil(participantMs / 60000)`.
    pub participant_minutes: i64,
    pub stream_ms: i64,
    /// `ceil(streamMs / 60000)`.
    pub stream_minutes: i64,
    pub sessions: i64,
    pub streams: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    pub app_id: u32,
    pub from: i64,
    pub to: i64,
    pub group_by: GroupBy,
    /// Groups with any usage in the window, ordered by key.
    pub groups: Vec<UsageGroup>,
    pub total: UsageGroup,
}

fn minutes(ms: i64) -> i64 {
    (ms + MINUTE_MS - 1) / MINUTE_MS
}

/// `YYYY-MM-DD` of a unix-milliseconds instant (UTC), by Howard Hinnant's civil-from-days.
pub fn utc_day(ms: i64) -> String {
    let days = ms.div_euclid(DAY_MS);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Unix milliseconds of `YYYY-MM-DD` 00:00 UTC (days-from-civil).
pub fn parse_day(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || text.len() != 10 {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = days * DAY_MS;
    (utc_day(ms) == text).then_some(ms)
}

/// A time for `from`/`to`: unix milliseconds, or a UTC day `YYYY-MM-DD` (its midnight).
pub fn parse_time(text: &str) -> Option<i64> {
    text.parse::<i64>().ok().filter(|ms| *ms >= 0).or_else(|| parse_day(text))
}

impl UsageQuery {
    pub fn validate(&self) -> Result<(), UsageError> {
        if self.from_ms < 0 || self.to_ms <= self.from_ms {
            return Err(UsageError::InvalidRange(format!(
                "`from` ({}) must be before `to` ({}), both unix milliseconds >= 0",
                self.from_ms, self.to_ms
            )));
        }
        if self.to_ms - self.from_ms > MAX_WINDOW_MS {
            return Err(UsageError::InvalidRange("the window [from, to) may cover at most 366 days".into()));
        }
        Ok(())
    }
}

#[derive(Default)]
struct Sums {
    participant_ms: i64,
    stream_ms: i64,
    sessions: i64,
    streams: i64,
    bytes_in: i64,
    bytes_out: i64,
}

impl Sums {
    fn into_group(self, key: String) -> UsageGroup {
        UsageGroup {
            key,
            participant_ms: self.participant_ms,
            participant_minutes: minutes(self.participant_ms),
            stream_ms: self.stream_ms,
            stream_minutes: minutes(self.stream_ms),
            sessions: self.sessions,
            streams: self.streams,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
        }
    }
}

/// Pieces of `[start, end)` clipped to `[from, to)`, split at UTC midnight when by day.
fn pieces(start: i64, end: i64, from: i64, to: i64, by_day: bool) -> Vec<(i64, i64)> {
    let (mut a, b) = (start.max(from), end.min(to));
    let mut out = Vec::new();
    while a < b {
        let cut = if by_day { ((a.div_euclid(DAY_MS) + 1) * DAY_MS).min(b) } else { b };
        out.push((a, cut));
        a = cut;
    }
    out
}

struct Interval {
    room_id: String,
    user_id: String,
    start: i64,
    end: Option<i64>,
    bytes: Option<(i64, i64)>,
}

/// Computes the report (`now_ms` closes the intervals still open).
pub async fn query(store: &Store, query: &UsageQuery, now_ms: i64) -> Result<UsageReport, UsageError> {
    query.validate()?;
    let pool = store.pool()?;
    let sessions: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT room_id, user_id, login_ms, logout_ms FROM usage_sessions \
         WHERE app_id = $1 AND login_ms < $2 AND (logout_ms IS NULL OR logout_ms > $3)",
    )
    .bind(i64::from(query.app_id))
    .bind(query.to_ms)
    .bind(query.from_ms)
    .fetch_all(pool)
    .await?;
    let streams: Vec<(String, String, i64, Option<i64>, i64, i64)> = sqlx::query_as(
        "SELECT room_id, user_id, start_ms, stop_ms, bytes_in, bytes_out FROM usage_streams \
         WHERE app_id = $1 AND start_ms < $2 AND (stop_ms IS NULL OR stop_ms > $3)",
    )
    .bind(i64::from(query.app_id))
    .bind(query.to_ms)
    .bind(query.from_ms)
    .fetch_all(pool)
    .await?;
    let sessions = sessions.into_iter().map(|(room_id, user_id, start, end)| Interval {
        room_id,
        user_id,
        start,
        end,
        bytes: None,
    });
    let streams = streams.into_iter().map(|(room_id, user_id, start, end, bytes_in, bytes_out)| Interval {
        room_id,
        user_id,
        start,
        end,
        bytes: Some((bytes_in, bytes_out)),
    });
    Ok(aggregate(query, sessions.collect(), streams.collect(), now_ms))
}

fn aggregate(query: &UsageQuery, sessions: Vec<Interval>, streams: Vec<Interval>, now_ms: i64) -> UsageReport {
    let by_day = query.group_by == GroupBy::Day;
    let (from, to) = (query.from_ms, query.to_ms);
    let mut groups: BTreeMap<String, Sums> = BTreeMap::new();
    let mut total = Sums::default();
    for (interval, is_stream) in sessions.iter().map(|i| (i, false)).chain(streams.iter().map(|i| (i, true))) {
        let end = interval.end.unwrap_or(now_ms.max(interval.start));
        let pieces = pieces(interval.start, end, from, to, by_day);
        let key_of = |a: i64| match query.group_by {
            GroupBy::Room => interval.room_id.clone(),
            GroupBy::User => interval.user_id.clone(),
            GroupBy::Day => utc_day(a),
        };
        let mut counted = false;
        for (a, b) in pieces {
            let sums = groups.entry(key_of(a)).or_default();
            let ms = b - a;
            if is_stream {
                sums.stream_ms += ms;
                total.stream_ms += ms;
            } else {
                sums.participant_ms += ms;
                total.participant_ms += ms;
            }
            if !counted {
                counted = true;
                if is_stream {
                    sums.streams += 1;
                    total.streams += 1;
                } else {
                    sums.sessions += 1;
                    total.sessions += 1;
                }
            }
        }
        if let (Some((bytes_in, bytes_out)), Some(stop)) = (interval.bytes, interval.end)
            && stop >= from
            && stop < to
        {
            let sums = groups.entry(key_of(stop)).or_default();
            sums.bytes_in += bytes_in;
            sums.bytes_out += bytes_out;
            total.bytes_in += bytes_in;
            total.bytes_out += bytes_out;
        }
    }
    UsageReport {
        app_id: query.app_id,
        from,
        to,
        group_by: query.group_by,
        groups: groups.into_iter().map(|(key, sums)| sums.into_group(key)).collect(),
        total: total.into_group("*".into()),
    }
}

/// The report as a text table (`huddle usage`).
pub fn table(report: &UsageReport) -> String {
    let header = ["key", "participant_min", "participant_ms", "stream_min", "stream_ms", "sessions", "streams"];
    let rows: Vec<[String; 7]> = report
        .groups
        .iter()
        .chain(std::iter::once(&report.total))
        .map(|g| {
            [
                if g.key == "*" { "TOTAL".to_owned() } else { g.key.clone() },
                g.participant_minutes.to_string(),
                g.participant_ms.to_string(),
                g.stream_minutes.to_string(),
                g.stream_ms.to_string(),
                g.sessions.to_string(),
                g.streams.to_string(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].len()).chain([header[i].len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: &[&str]| {
        cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, width))| if i == 0 { format!("{cell:<width$}") } else { format!("{cell:>width$}") })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut out = line(&header);
    out.push('\n');
    for row in &rows {
        out.push_str(&line(&row.iter().map(String::as_str).collect::<Vec<_>>()));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(room: &str, user: &str, start: i64, end: Option<i64>) -> Interval {
        Interval { room_id: room.into(), user_id: user.into(), start, end, bytes: None }
    }

    #[test]
    fn days_convert_both_ways() {
        assert_eq!(utc_day(0), "1970-01-01");
        let day = parse_day("2026-11-30").unwrap();
        assert_eq!(day, 1_795_996_800_000);
        assert_eq!(utc_day(day), "2026-11-30");
        assert_eq!(utc_day(day - 1), "2026-11-29");
        assert_eq!(parse_day("2024-02-29").map(utc_day).as_deref(), Some("2024-02-29"));
        assert_eq!(parse_day("2026-02-29"), None);
        assert_eq!(parse_time("123"), Some(123));
        assert_eq!(parse_time("-5"), None);
    }

    #[test]
    fn intervals_are_clipped_and_minutes_rounded_up_once_per_group() {
        let query = UsageQuery { app_id: 1, from_ms: 1_000, to_ms: 1_000_000, group_by: GroupBy::Room };
        let sessions = vec![
            interval("a", "u1", 0, Some(61_000)),          // clipped to 1 000..61 000: 60 000 ms
            interval("a", "u2", 500_000, None),            // open: up to now (900 000): 400 000
            interval("b", "u1", 999_999, Some(2_000_000)), // 1 ms inside
            interval("c", "u3", 2_000_000, Some(3_000_000)), // outside (the SQL would not return it)
        ];
        let report = aggregate(&query, sessions, vec![], 900_000);
        assert_eq!(report.groups.len(), 2);
        assert_eq!(report.groups[0].participant_ms, 460_000);
        assert_eq!(report.groups[0].participant_minutes, 8); // 7.67 → 8
        assert_eq!(report.groups[0].sessions, 2);
        assert_eq!(report.groups[1].participant_ms, 1);
        assert_eq!(report.groups[1].participant_minutes, 1);
        assert_eq!(report.total.participant_ms, 460_001);
        assert_eq!(report.total.participant_minutes, 8);
    }

    #[test]
    fn days_split_at_utc_midnight() {
        let midnight = parse_day("2026-11-30").unwrap();
        let query =
            UsageQuery { app_id: 1, from_ms: midnight - DAY_MS, to_ms: midnight + DAY_MS, group_by: GroupBy::Day };
        let streams = vec![Interval {
            room_id: "r".into(),
            user_id: "u".into(),
            start: midnight - 90_000,
            end: Some(midnight + 30_000),
            bytes: Some((10, 20)),
        }];
        let report = aggregate(&query, vec![], streams, midnight + DAY_MS);
        let keys: Vec<_> = report.groups.iter().map(|g| (g.key.as_str(), g.stream_ms, g.streams)).collect();
        assert_eq!(keys, vec![("2026-11-29", 90_000, 1), ("2026-11-30", 30_000, 0)]);
        assert_eq!(report.groups[1].bytes_in, 10);
        assert_eq!(report.total.stream_minutes, 2);
        assert!(table(&report).contains("TOTAL"));
    }
}
