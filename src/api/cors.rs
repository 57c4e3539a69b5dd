//! Which browser origins may use this server: the CORS layer in front of every route, and
//! the `Origin` check on the websocket upgrade. Both follow one list, `--allowed-origins`.
//!
//! A business serves its call page from its own origin and the SDK then calls Huddle across
//! origins: `POST` of an SDP offer with `Authorization` and `Content-Type: application/sdp`
//! (a preflighted request), reading `Location` from the answer, and `DELETE` on it later.
//!
//! A page on Huddle's own origin (the demo page) is always allowed. Which origin is Huddle's
//! own is decided without trusting what a page's browser can be made to send:
//! - with `--public-url`, exactly that URL's origin (scheme, host and port);
//! - without it, `http://` (or `https://` behind a proxy that says `X-Forwarded-Proto: https`)
//!   plus the `Host` the request was sent to, but only when that host is an IP address or
//!   `localhost`. A DNS name is not trusted this way: a page of `http://evil.example` whose
//!   name an attacker re-points at Huddle (DNS rebinding) sends `Host: evil.example` and the
//!   matching `Origin`. Such names must be listed in `--allowed-origins` (or be the public URL).
//!
//! The scheme is always part of the comparison: `https://host` is not `http://host`.

use actix_cors::Cors;
use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderName, HeaderValue};

use crate::auth::signature::{HEADER_APP_ID, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use crate::error::{ApiError, ErrorCode};

/// How long browsers may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE_SECS: usize = 600;

/// Origins whose pages may call the HTTP routes and open the websocket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// Any origin (`*`, and the default).
    #[default]
    Any,
    /// Only these (`scheme://host[:port]`, lower case, without a default port) and the
    /// server's own origin.
    Only(Vec<String>),
}

impl AllowedOrigins {
    /// Parses a comma-separated list of exact origins, or `*`.
    pub fn parse(list: &str) -> Result<AllowedOrigins, String> {
        let entries: Vec<&str> = list.split(',').map(str::trim).filter(|e| !e.is_empty()).collect();
        if entries.is_empty() {
            return Err("--allowed-origins is empty: list origins such as https://app.example.com, or `*`".into());
        }
        if entries.contains(&"*") {
            if entries.len() > 1 {
                return Err("--allowed-origins: `*` allows every origin and cannot be combined with others".into());
            }
            return Ok(AllowedOrigins::Any);
        }
        entries.into_iter().map(normalize_origin).collect::<Result<_, _>>().map(AllowedOrigins::Only)
    }
}

/// The allowed origins plus what Huddle's own origin is (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    allowed: AllowedOrigins,
    /// The origin of `--public-url`, when set.
    public_origin: Option<String>,
}

impl OriginPolicy {
    /// `public_url` is `--public-url` (already checked to start with http:// or https://).
    pub fn new(allowed: AllowedOrigins, public_url: Option<&str>) -> OriginPolicy {
        let public_origin = public_url.and_then(|url| {
            let (scheme, rest) = url.split_once("://")?;
            let authority = rest.split(['/', '?', '#']).next()?;
            normalize_origin(&format!("{scheme}://{authority}")).ok()
        });
        OriginPolicy { allowed, public_origin }
    }

    /// Whether a page at `origin` may use this server; `headers` are the request's.
    pub fn allows(&self, origin: &str, headers: &actix_web::http::header::HeaderMap) -> bool {
        match &self.allowed {
            AllowedOrigins::Any => true,
            AllowedOrigins::Only(list) => {
                let Ok(origin) = normalize_origin(origin) else { return false };
                list.contains(&origin) || self.own_origin(headers).is_some_and(|own| own == origin)
            }
        }
    }

    /// Huddle's own origin for a request with these headers, if it can be told safely.
    fn own_origin(&self, headers: &actix_web::http::header::HeaderMap) -> Option<String> {
        if let Some(public) = &self.public_origin {
            return Some(public.clone());
        }
        let host = headers.get(header::HOST)?.to_str().ok()?;
        let name = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next()?,
            None => host.rsplit_once(':').map_or(host, |(name, _)| name),
        };
        let trusted = name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok();
        if !trusted {
            return None;
        }
        let forwarded = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok());
        let scheme = if forwarded.is_some_and(|p| p.trim().eq_ignore_ascii_case("https")) { "https" } else { "http" };
        normalize_origin(&format!("{scheme}://{host}")).ok()
    }
}

/// Checks one `scheme://host[:port]` entry and puts it in the form browsers send: lower
/// case, no default port.
fn normalize_origin(entry: &str) -> Result<String, String> {
    let invalid = |why: &str| format!("--allowed-origins: {entry:?} is not an origin ({why})");
    let (scheme, rest) = entry.split_once("://").ok_or_else(|| invalid("expected scheme://host[:port]"))?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return Err(invalid("bad scheme"));
    }
    if let Some(cut) = rest.find(['/', '?', '#']) {
        let suggestion = format!("{scheme}://{}", &rest[..cut]);
        return Err(invalid(&format!("an origin has no path; did you mean {suggestion}?")));
    }
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (address, after) = v6.split_once(']').ok_or_else(|| invalid("unclosed ["))?;
            if address.is_empty() || !address.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
                return Err(invalid("bad IPv6 address"));
            }
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or_else(|| invalid("junk after ]"))?),
            };
            (&rest[..address.len() + 2], port)
        }
        None => match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        },
    };
    let host_ok = !host.is_empty()
        && (host.starts_with('[') || host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
    if !host_ok {
        return Err(invalid("bad host"));
    }
    let scheme = scheme.to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    let port = match port {
        None => None,
        Some(port) => match port.parse::<u16>() {
            Ok(0) | Err(_) => return Err(invalid("bad port")),
            Ok(port) => Some(port),
        },
    };
    let default_port = match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    Ok(match port {
        Some(port) if Some(port) != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// The CORS layer: answers preflights and adds the `Access-Control-*` headers for allowed
/// origins. A request from another origin still reaches its handler but gets no CORS headers,
/// so the browser does not let the page read it (and never sends what needed a preflight).
pub fn layer(policy: &OriginPolicy) -> Cors {
    let cors = Cors::default()
        .allowed_methods(["GET", "HEAD", "POST", "DELETE", "OPTIONS"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static(HEADER_APP_ID),
            HeaderName::from_static(HEADER_TIMESTAMP),
            HeaderName::from_static(HEADER_NONCE),
            HeaderName::from_static(HEADER_SIGNATURE),
        ])
        .expose_headers([header::LOCATION, header::ETAG])
        .max_age(PREFLIGHT_MAX_AGE_SECS)
        .block_on_origin_mismatch(false);
    match policy.allowed {
        AllowedOrigins::Any => cors.allow_any_origin(),
        AllowedOrigins::Only(_) => {
            let policy = policy.clone();
            cors.allowed_origin_fn(move |origin: &HeaderValue, head| {
                origin.to_str().is_ok_and(|origin| policy.allows(origin, &head.headers))
            })
        }
    }
}

/// Refuses a websocket upgrade from a page whose origin is not allowed (403, code 5022).
/// Clients that send no `Origin` (servers, native apps, load generators) are not browsers
/// and pass.
pub fn check_websocket_origin(req: &HttpRequest, policy: &OriginPolicy) -> Result<(), ApiError> {
    let Some(origin) = req.headers().get(header::ORIGIN) else { return Ok(()) };
    if origin.to_str().is_ok_and(|origin| policy.allows(origin, req.headers())) {
        return Ok(());
    }
    let shown = String::from_utf8_lossy(origin.as_bytes());
    Err(ApiError::new(
        ErrorCode::OriginNotAllowed,
        format!("pages from {shown} may not open the websocket; the server's --allowed-origins does not list it"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(list: &[&str]) -> AllowedOrigins {
        AllowedOrigins::Only(list.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn origins_are_checked_and_normalized() {
        assert_eq!(AllowedOrigins::parse("*"), Ok(AllowedOrigins::Any));
        assert_eq!(AllowedOrigins::parse(" * "), Ok(AllowedOrigins::Any));
        assert_eq!(
            AllowedOrigins::parse("https://App.Example.com, http://localhost:3000,https://x.example:443,"),
            Ok(only(&["https://app.example.com", "http://localhost:3000", "https://x.example"]))
        );
        assert_eq!(AllowedOrigins::parse("http://[::1]:8080"), Ok(only(&["http://[::1]:8080"])));
        for (bad, why) in [
            ("", "empty"),
            ("*,https://a.example", "cannot be combined"),
            ("app.example.com", "scheme://host"),
            ("https://app.example.com/", "did you mean https://app.example.com?"),
            ("https://app.example.com/call?x", "no path"),
            ("https://", "bad host"),
            ("https://a b.example", "bad host"),
            ("https://user@a.example", "bad host"),
            ("https://a.example:0", "bad port"),
            ("https://a.example:99999", "bad port"),
            ("https://a.example:", "bad port"),
            ("http://[::1", "unclosed"),
            ("1http://a.example", "bad scheme"),
        ] {
            let err = AllowedOrigins::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
            assert!(err.contains("--allowed-origins"), "{err}");
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> actix_web::http::header::HeaderMap {
        let mut map = actix_web::http::header::HeaderMap::new();
        for (name, value) in pairs {
            map.insert(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn listed_pages_are_allowed_and_the_scheme_counts() {
        let policy = OriginPolicy::new(only(&["https://app.example.com"]), None);
        let none = headers(&[]);
        assert!(policy.allows("https://app.example.com", &none));
        assert!(policy.allows("HTTPS://APP.example.com:443", &none), "compared in normal form");
        assert!(!policy.allows("https://evil.example", &none));
        assert!(!policy.allows("http://app.example.com", &none), "the scheme is part of the origin");
        assert!(!policy.allows("null", &none));
        assert!(OriginPolicy::new(AllowedOrigins::Any, None).allows("null", &none));
    }

    #[test]
    fn without_a_public_url_only_ip_and_localhost_hosts_count_as_own_origin() {
        let policy = OriginPolicy::new(only(&["https://app.example.com"]), None);
        let host = |h: &str| headers(&[("host", h)]);
        assert!(policy.allows("http://127.0.0.1:8080", &host("127.0.0.1:8080")));
        assert!(policy.allows("http://localhost:8080", &host("localhost:8080")));
        assert!(policy.allows("http://[::1]:8080", &host("[::1]:8080")));
        assert!(!policy.allows("https://127.0.0.1:8080", &host("127.0.0.1:8080")), "scheme differs");
        assert!(!policy.allows("http://127.0.0.1:9090", &host("127.0.0.1:8080")), "port differs");
        let proxied = headers(&[("host", "10.0.0.5"), ("x-forwarded-proto", "https")]);
        assert!(policy.allows("https://10.0.0.5", &proxied));
        assert!(!policy.allows("http://10.0.0.5", &proxied));
        // DNS rebinding: the attacker's name points at Huddle; Host and Origin agree.
        assert!(!policy.allows("http://evil.example:8080", &host("evil.example:8080")));
    }

    #[test]
    fn with_a_public_url_only_its_origin_is_own() {
        let policy = OriginPolicy::new(only(&["https://app.example.com"]), Some("https://huddle.example.com/base"));
        let host = |h: &str| headers(&[("host", h)]);
        assert!(policy.allows("https://huddle.example.com", &host("anything")));
        assert!(!policy.allows("http://huddle.example.com", &host("huddle.example.com")), "scheme differs");
        assert!(!policy.allows("http://evil.example", &host("evil.example")));
        assert!(!policy.allows("http://127.0.0.1:8080", &host("127.0.0.1:8080")), "Host is not consulted");
    }

    #[test]
    fn the_websocket_refuses_other_origins_with_5022() {
        use actix_web::test::TestRequest;
        let allowed = OriginPolicy::new(only(&["http://a.example"]), None);
        let request = |origin: Option<&str>| {
            let mut request = TestRequest::get().uri("/ws").insert_header((header::HOST, "127.0.0.1:8080"));
            if let Some(origin) = origin {
                request = request.insert_header((header::ORIGIN, origin));
            }
            request.to_http_request()
        };
        assert!(check_websocket_origin(&request(Some("http://a.example")), &allowed).is_ok());
        assert!(check_websocket_origin(&request(None), &allowed).is_ok());
        assert!(check_websocket_origin(&request(Some("http://127.0.0.1:8080")), &allowed).is_ok());
        let refused = check_websocket_origin(&request(Some("http://b.example")), &allowed).unwrap_err();
        assert_eq!(refused.code, ErrorCode::OriginNotAllowed);
        assert_eq!(refused.code.status().as_u16(), 403);
        let any = OriginPolicy::new(AllowedOrigins::Any, None);
        assert!(check_websocket_origin(&request(Some("http://b.example")), &any).is_ok());
    }
}
