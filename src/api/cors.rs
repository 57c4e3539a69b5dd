//! Which browser origins may use this server: the CORS layer in front of every route, and
//! the `Origin` check on the websocket upgrade. Both follow one list, `--allowed-origins`.
//!
//! A business serves its call page from its own origin and the SDK then calls Huddle across
//! origins: `POST` of an SDP offer with `Authorization` and `Content-Type: application/sdp`
//! (a preflighted request), reading `Location` from the answer, and `DELETE` on it later.
//!
//! A page on Huddle's own origin (the demo page) is always allowed: its `Origin` names the
//! host the request was sent to (`Host`), the same-origin rule of browsers (and of Gorilla
//! websocket's default `CheckOrigin`).

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

    /// Whether a page at `origin` may use this server; `host` is the request's `Host`.
    pub fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        match self {
            AllowedOrigins::Any => true,
            AllowedOrigins::Only(list) => {
                list.iter().any(|allowed| allowed.eq_ignore_ascii_case(origin)) || same_origin(origin, host)
            }
        }
    }
}

/// The origin's `host[:port]` is the host the request was sent to.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let authority = origin.split_once("://").map(|(_, authority)| authority);
    matches!((authority, host), (Some(a), Some(h)) if !a.is_empty() && a.eq_ignore_ascii_case(h))
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

fn host_of(headers: &actix_web::http::header::HeaderMap) -> Option<&str> {
    headers.get(header::HOST).and_then(|h| h.to_str().ok())
}

/// The CORS layer: answers preflights and adds the `Access-Control-*` headers for allowed
/// origins. A request from another origin still reaches its handler but gets no CORS headers,
/// so the browser does not let the page read it (and never sends what needed a preflight).
pub fn layer(allowed: &AllowedOrigins) -> Cors {
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
    match allowed {
        AllowedOrigins::Any => cors.allow_any_origin(),
        AllowedOrigins::Only(_) => {
            let allowed = allowed.clone();
            cors.allowed_origin_fn(move |origin: &HeaderValue, head| {
                origin.to_str().is_ok_and(|origin| allowed.allows(origin, host_of(&head.headers)))
            })
        }
    }
}

/// Refuses a websocket upgrade from a page whose origin is not allowed (403, code 5022).
/// Clients that send no `Origin` (servers, native apps, load generators) are not browsers
/// and pass.
pub fn check_websocket_origin(req: &HttpRequest, allowed: &AllowedOrigins) -> Result<(), ApiError> {
    let Some(origin) = req.headers().get(header::ORIGIN) else { return Ok(()) };
    if origin.to_str().is_ok_and(|origin| allowed.allows(origin, host_of(req.headers()))) {
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

    #[test]
    fn listed_and_same_origin_pages_are_allowed() {
        let allowed = only(&["https://app.example.com"]);
        assert!(allowed.allows("https://app.example.com", Some("huddle.example.com")));
        assert!(allowed.allows("HTTPS://APP.example.com", None));
        assert!(!allowed.allows("https://evil.example", Some("huddle.example.com")));
        assert!(!allowed.allows("http://app.example.com", None), "the scheme is part of the origin");
        assert!(!allowed.allows("null", Some("huddle.example.com")));
        assert!(allowed.allows("http://huddle.example.com:8080", Some("huddle.example.com:8080")), "own origin");
        assert!(!allowed.allows("http://huddle.example.com:9090", Some("huddle.example.com:8080")));
        assert!(AllowedOrigins::Any.allows("null", None));
    }

    #[test]
    fn the_websocket_refuses_other_origins_with_5022() {
        use actix_web::test::TestRequest;
        let allowed = only(&["http://a.example"]);
        let request = |origin: Option<&str>| {
            let mut request = TestRequest::get().uri("/ws").insert_header((header::HOST, "huddle.test"));
            if let Some(origin) = origin {
                request = request.insert_header((header::ORIGIN, origin));
            }
            request.to_http_request()
        };
        assert!(check_websocket_origin(&request(Some("http://a.example")), &allowed).is_ok());
        assert!(check_websocket_origin(&request(None), &allowed).is_ok());
        assert!(check_websocket_origin(&request(Some("http://huddle.test")), &allowed).is_ok());
        let refused = check_websocket_origin(&request(Some("http://b.example")), &allowed).unwrap_err();
        assert_eq!(refused.code, ErrorCode::OriginNotAllowed);
        assert_eq!(refused.code.status().as_u16(), 403);
        assert!(check_websocket_origin(&request(Some("http://b.example")), &AllowedOrigins::Any).is_ok());
    }
}
