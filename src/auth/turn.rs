//! TURN credentials, so that browsers behind firewalls that block UDP, or behind NATs that no
//! host candidate gets through, still reach the relay: their media goes through a TURN server
//! (coturn) that relays it to the relay's UDP port.
//!
//! Huddle and coturn share one secret (coturn's `use-auth-secret` + `static-auth-secret`, the
//! "TURN REST API" scheme of draft-uberti-behave-turn-rest-00) and never talk to each other:
//! Huddle hands each publish and play a username that carries its own expiry and a password
//! derived from it, and coturn recomputes the password from the username.
//!
//! ```text
//! username   = "<unix expiry>:<app id>:<user id>"          e.g. 1767229200:1:alice
//! credential = base64(HMAC-SHA1(secret, username))          standard alphabet, padded
//! ```
//!
//! With the secret `north-star-turn-secret`, `1767229200:1:alice` (expires 2026-01-01 01:00 UTC)
//! has the credential `he5gfCt0haYSl+ZIdQv0jhGF2yg=` — computed independently with
//! `python3 -c "import hmac,hashlib,base64; print(base64.b64encode(hmac.new(b'north-star-turn-secret',
//! b'1767229200:1:alice', hashlib.sha1).digest()).decode())"` and with `openssl dgst -sha1 -hmac`;
//! the unit tests below check it.
//!
//! coturn takes the digits before the first `:` as the expiry (so user ids may contain `:`),
//! refuses a username whose expiry has passed, and counts `user-quota` per `<app id>:<user id>`.
//! It checks the expiry when a client first authenticates on a connection: an allocation made
//! in time lives on through its refreshes, so the lifetime only bounds how long after the
//! reply the client may start using TURN (the SDK asks for fresh ones on every negotiation).

use std::fmt;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use thiserror::Error;
use utoipa::ToSchema;

/// Default lifetime of a TURN credential.
pub const DEFAULT_TTL_SECS: u64 = 3600;
/// Shortest and longest lifetime `--turn-credential-ttl-secs` accepts (a minute to a week, the
/// range the Helm chart's schema allows too).
pub const TTL_RANGE_SECS: std::ops::RangeInclusive<u64> = 60..=604_800;
/// Shortest shared secret accepted: the credential is an HMAC keyed with it, and anyone who
/// guesses it can mint TURN credentials (use `openssl rand -hex 32`).
pub const MIN_SECRET_LEN: usize = 16;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TurnConfigError {
    #[error(
        "invalid TURN URL {url:?}: {why} (expected turn:HOST[:PORT][?transport=udp|tcp] or turns:HOST[:PORT][?transport=tcp], RFC 7065)"
    )]
    Url { url: String, why: &'static str },
    #[error("--turn-urls is set but --turn-secret is not: set coturn's static-auth-secret there")]
    MissingSecret,
    #[error("--turn-secret is set but --turn-urls is not: list the TURN server URLs clients should use")]
    MissingUrls,
    #[error("--turn-secret must be at least {MIN_SECRET_LEN} characters, without spaces or control characters")]
    WeakSecret,
    #[error("--turn-credential-ttl-secs must be between 60 and 604800 (a week)")]
    Ttl,
}

/// The shared secret; never printed (`Debug` shows `<redacted>`).
#[derive(Clone, PartialEq, Eq)]
pub struct TurnSecret(String);

impl TurnSecret {
    pub fn new(secret: String) -> TurnSecret {
        TurnSecret(secret)
    }

    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for TurnSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TurnSecret(<redacted>)")
    }
}

impl std::str::FromStr for TurnSecret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(TurnSecret(s.to_owned()))
    }
}

/// One entry of `RTCConfiguration.iceServers`, as handed to clients: pass it to
/// `new RTCPeerConnection({iceServers})` unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IceServer {
    /// TURN URIs (RFC 7065), e.g. `turn:turn.example.com:3478?transport=udp`.
    pub urls: Vec<String>,
    /// `<unix expiry>:<app id>:<user id>`.
    pub username: String,
    /// base64(HMAC-SHA1(shared secret, username)).
    pub credential: String,
}

/// The TURN servers clients are sent to and the secret they share with Huddle.
#[derive(Debug, Clone)]
pub struct TurnConfig {
    urls: Vec<String>,
    secret: TurnSecret,
    ttl_secs: u64,
}

impl TurnConfig {
    /// Checks the settings: `None` when TURN is not configured (no URLs and no secret).
    /// Empty entries of `urls` (a trailing comma, an empty variable) are ignored.
    pub fn from_settings(
        urls: &[String],
        secret: Option<&TurnSecret>,
        ttl_secs: u64,
    ) -> Result<Option<TurnConfig>, TurnConfigError> {
        if !TTL_RANGE_SECS.contains(&ttl_secs) {
            return Err(TurnConfigError::Ttl);
        }
        let urls: Vec<String> = urls.iter().map(|u| u.trim()).filter(|u| !u.is_empty()).map(str::to_owned).collect();
        let secret = secret.filter(|s| !s.0.is_empty());
        let secret = match (urls.is_empty(), secret) {
            (true, None) => return Ok(None),
            (false, None) => return Err(TurnConfigError::MissingSecret),
            (true, Some(_)) => return Err(TurnConfigError::MissingUrls),
            (false, Some(secret)) => secret.clone(),
        };
        let printable = secret.0.bytes().all(|b| (0x21..=0x7e).contains(&b) || b >= 0x80);
        if secret.0.len() < MIN_SECRET_LEN || !printable {
            return Err(TurnConfigError::WeakSecret);
        }
        for url in &urls {
            validate_url(url).map_err(|why| TurnConfigError::Url { url: url.clone(), why })?;
        }
        Ok(Some(TurnConfig { urls, secret, ttl_secs }))
    }

    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// Credentials for user `user_id` of app `app_id`, valid until `now` + the lifetime.
    pub fn ice_server(&self, app_id: u32, user_id: &str, now: i64) -> IceServer {
        let expiry = now.saturating_add(self.ttl_secs as i64);
        let username = format!("{expiry}:{app_id}:{user_id}");
        let credential = credential(self.secret.as_bytes(), &username);
        IceServer { urls: self.urls.clone(), username, credential }
    }
}

/// The `iceServers` of a publish or play reply: one TURN entry, or none without TURN.
pub fn ice_servers(turn: Option<&TurnConfig>, app_id: u32, user_id: &str, now: i64) -> Vec<IceServer> {
    turn.map(|turn| turn.ice_server(app_id, user_id, now)).into_iter().collect()
}

/// base64(HMAC-SHA1(secret, username)): the TURN password coturn derives from the username.
pub fn credential(secret: &[u8], username: &str) -> String {
    // HMAC takes keys of any length; the fallback is never taken.
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).unwrap_or_else(|_| Hmac::<Sha1>::new(&Default::default()));
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks a TURN URI (RFC 7065): `turn:` or `turns:`, a host (DNS name, IPv4, or `[IPv6]`),
/// an optional port and an optional `?transport=udp|tcp` (`turns:` only over TCP: browsers have
/// no TURN over DTLS).
pub fn validate_url(url: &str) -> Result<(), &'static str> {
    let (scheme, rest) = url.split_once(':').ok_or("no scheme")?;
    let secure = match scheme.to_ascii_lowercase().as_str() {
        "turn" => false,
        "turns" => true,
        "stun" | "stuns" => return Err("STUN URLs are not needed: the relay is reached directly or through TURN"),
        _ => return Err("the scheme must be turn or turns"),
    };
    let (address, query) = match rest.split_once('?') {
        Some((address, query)) => (address, Some(query)),
        None => (rest, None),
    };
    if let Some(query) = query {
        match query.strip_prefix("transport=").map(str::to_ascii_lowercase).as_deref() {
            Some("tcp") => {}
            Some("udp") if !secure => {}
            Some("udp") => return Err("turns: runs over TLS, which needs transport=tcp"),
            _ => return Err("the only query allowed is transport=udp or transport=tcp"),
        }
    }
    if address.starts_with("//") {
        return Err("TURN URIs have no // after the scheme");
    }
    let (host, port) = if let Some(bracketed) = address.strip_prefix('[') {
        let (ip, after) = bracketed.split_once(']').ok_or("an IPv6 address needs its closing ]")?;
        ip.parse::<std::net::Ipv6Addr>().map_err(|_| "not an IPv6 address between [ ]")?;
        match after {
            "" => (ip, None),
            _ => (ip, Some(after.strip_prefix(':').ok_or("expected :PORT after the IPv6 address")?)),
        }
    } else {
        match address.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (address, None),
        }
    };
    let host_ok = |h: &str| {
        !h.is_empty() && h.len() <= 253 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    };
    if !address.starts_with('[') && !host_ok(host) {
        return Err("the host must be a DNS name, an IPv4 address or [IPv6]");
    }
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) || !matches!(port.parse::<u16>(), Ok(1..)))
    {
        return Err("the port must be 1 to 65535");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> TurnSecret {
        TurnSecret::new(s.to_owned())
    }

    #[test]
    fn the_credential_matches_the_documented_vector() {
        // Computed independently with Python's hmac and base64 and with
        // `openssl dgst -sha1 -hmac` (see the module docs and docs/PROTOCOL.md).
        assert_eq!(credential(b"north-star-turn-secret", "1767229200:1:alice"), "he5gfCt0haYSl+ZIdQv0jhGF2yg=");
        assert_eq!(
            credential(b"north-star-turn-secret", "1767229200:424242:bob@corp:team-7"),
            "K5Afau0pPG/g9Cnu/ZQAbRUomew="
        );
        // RFC 2202 test case 2 (HMAC-SHA1, key "Jefe"), in base64.
        assert_eq!(credential(b"Jefe", "what do ya want for nothing?"), "7/zfauXrL6LSdBbV8YTfnCWafHk=");
    }

    #[test]
    fn ice_servers_carry_expiry_app_and_user() {
        let urls = vec![
            "turn:turn.example.com:3478?transport=udp".to_owned(),
            " turns:turn.example.com:5349?transport=tcp ".to_owned(),
        ];
        let turn = TurnConfig::from_settings(&urls, Some(&secret("north-star-turn-secret")), 3600).unwrap().unwrap();
        let servers = ice_servers(Some(&turn), 1, "alice", 1_767_225_600);
        assert_eq!(
            servers,
            vec![IceServer {
                urls: vec![
                    "turn:turn.example.com:3478?transport=udp".to_owned(),
                    "turns:turn.example.com:5349?transport=tcp".to_owned()
                ],
                username: "1767229200:1:alice".to_owned(),
                credential: "he5gfCt0haYSl+ZIdQv0jhGF2yg=".to_owned(),
            }]
        );
        assert_eq!(ice_servers(None, 1, "alice", 1_767_225_600), Vec::new());
    }

    #[test]
    fn settings_are_checked() {
        let ok = secret("0123456789abcdef");
        let urls = |list: &[&str]| list.iter().map(|u| u.to_string()).collect::<Vec<_>>();
        assert_eq!(TurnConfig::from_settings(&[], None, DEFAULT_TTL_SECS).map(|t| t.is_none()), Ok(true));
        assert_eq!(
            TurnConfig::from_settings(&urls(&["", " "]), Some(&secret("")), 3600).map(|t| t.is_none()),
            Ok(true)
        );
        let one = urls(&["turn:127.0.0.1:3478"]);
        assert_eq!(TurnConfig::from_settings(&one, None, 3600).unwrap_err(), TurnConfigError::MissingSecret);
        assert_eq!(TurnConfig::from_settings(&[], Some(&ok), 3600).unwrap_err(), TurnConfigError::MissingUrls);
        assert_eq!(
            TurnConfig::from_settings(&one, Some(&secret("short")), 3600).unwrap_err(),
            TurnConfigError::WeakSecret
        );
        assert_eq!(
            TurnConfig::from_settings(&one, Some(&secret("0123456789 abcdef")), 3600).unwrap_err(),
            TurnConfigError::WeakSecret
        );
        for ttl in [0, 59, 604_801] {
            assert_eq!(TurnConfig::from_settings(&one, Some(&ok), ttl).unwrap_err(), TurnConfigError::Ttl);
        }
        let bad = TurnConfig::from_settings(&urls(&["turn:a.example", "http://b.example"]), Some(&ok), 3600);
        assert!(matches!(bad, Err(TurnConfigError::Url { ref url, .. }) if url == "http://b.example"), "{bad:?}");
    }

    #[test]
    fn turn_uris_follow_rfc_7065() {
        for good in [
            "turn:turn.example.com",
            "turn:turn.example.com:3478",
            "turn:turn.example.com:3478?transport=udp",
            "TURN:turn.example.com:3478?transport=TCP",
            "turns:turn.example.com:5349?transport=tcp",
            "turns:turn.example.com",
            "turn:192.0.2.7:3478?transport=udp",
            "turn:[2001:db8::7]:3478?transport=tcp",
            "turn:[::1]",
        ] {
            assert_eq!(validate_url(good), Ok(()), "{good}");
        }
        for bad in [
            "turn.example.com:3478",
            "http://turn.example.com",
            "stun:stun.example.com:3478",
            "turn://turn.example.com:3478",
            "turn:",
            "turn::3478",
            "turn:turn.example.com:0",
            "turn:turn.example.com:65536",
            "turn:turn.example.com:34x",
            "turn:turn.example.com:3478?transport=sctp",
            "turn:turn.example.com:3478?foo=bar",
            "turns:turn.example.com:5349?transport=udp",
            "turn:user@turn.example.com",
            "turn:turn.example.com/path",
            "turn:[2001:db8::7:3478",
            "turn:[nope]:3478",
            "turn:2001:db8::7",
        ] {
            assert!(validate_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let turn =
            TurnConfig::from_settings(&["turn:t.example".to_owned()], Some(&secret("super-secret-value-42")), 3600);
        let printed = format!("{turn:?}");
        assert!(!printed.contains("super-secret-value-42"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }
}
