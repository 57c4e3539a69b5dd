//! The browser SDK and the demo page, compiled into the binary: a business page loads
//! `/sdk/huddle-express.js` (or the `.mjs` module) from the Huddle it talks to, and `/` is a
//! demo call page that works on embedded defaults (it fetches tokens from `/dev/token`).
//!
//! Every file has a strong `ETag` (a hash of its bytes, computed once) and
//! `Cache-Control: no-cache`: browsers keep a copy but ask again each time, and get `304 Not
//! Modified` while the binary has not changed. Text files are also kept gzip-compressed
//! (compressed once, on first use) and sent so to clients that accept it: the SDK is ~80 KB
//! as written and ~20 KB on the wire. The two encodings have different entity tags.

use std::io::Write;
use std::sync::LazyLock;

use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use sha2::{Digest, Sha256};

use crate::config::Role;

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// One embedded file and the path it is served at.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// The SDK: served by every node, so that a page can load it from whichever node it knows.
pub const SDK: &[Asset] = &[
    Asset {
        path: "/sdk/huddle-express.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../../sdk/huddle-express.js"),
    },
    Asset {
        path: "/sdk/huddle-express.mjs",
        content_type: JAVASCRIPT,
        body: include_bytes!("../../sdk/huddle-express.mjs"),
    },
    Asset {
        path: "/sdk/huddle-express.d.ts",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../../sdk/huddle-express.d.ts"),
    },
];

/// The demo page and the quickstart example: they open the websocket, so only nodes that serve
/// one (not `--role relay`) serve them. They are served whether or not dev mode is on; without
/// it the demo page has no `/dev/token` to call and says so.
pub const PAGES: &[Asset] = &[
    Asset { path: "/", content_type: "text/html; charset=utf-8", body: include_bytes!("../../sdk/demo/index.html") },
    Asset {
        path: "/demo/demo.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../sdk/demo/demo.css"),
    },
    Asset { path: "/demo/demo.js", content_type: JAVASCRIPT, body: include_bytes!("../../sdk/demo/demo.js") },
    Asset {
        path: "/examples/quickstart.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../sdk/examples/quickstart.html"),
    },
];

/// A strong entity tag: the first 128 bits of the SHA-256 of the bytes, quoted.
fn entity_tag(body: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(body);
    let tag = format!("\"{}\"", hex::encode(&digest[..16]));
    HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// Whether `If-None-Match` names `etag` (or is `*`). The comparison is the weak one RFC 9110
/// asks for here, so a `W/` prefix added by a proxy still matches.
fn not_modified(req: &HttpRequest, etag: &HeaderValue) -> bool {
    let Ok(etag) = etag.to_str() else { return false };
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|candidate| candidate.trim())
        .any(|candidate| candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag)
}

/// An asset with its entity tag, hashed once per process, and its gzip form when that is
/// smaller.
struct Served {
    asset: &'static Asset,
    etag: HeaderValue,
    gzip: Option<(web::Bytes, HeaderValue)>,
}

fn hashed(assets: &'static [Asset]) -> Vec<Served> {
    assets
        .iter()
        .map(|asset| {
            let gzip = gzipped(asset.body).filter(|packed| packed.len() < asset.body.len()).map(|packed| {
                let etag = entity_tag(&packed);
                (web::Bytes::from(packed), etag)
            });
            Served { asset, etag: entity_tag(asset.body), gzip }
        })
        .collect()
}

fn gzipped(body: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(body).ok()?;
    encoder.finish().ok()
}

/// Whether `Accept-Encoding` allows gzip (listed, and not with `q=0`).
fn accepts_gzip(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or_default();
            let refused = parts.any(|p| p.strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()) == Some(0.0));
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

static SDK_SERVED: LazyLock<Vec<Served>> = LazyLock::new(|| hashed(SDK));
static PAGES_SERVED: LazyLock<Vec<Served>> = LazyLock::new(|| hashed(PAGES));

async fn respond(req: HttpRequest, served: &'static Served) -> HttpResponse {
    let gzip = served.gzip.as_ref().filter(|_| accepts_gzip(&req));
    let etag = gzip.map_or(&served.etag, |(_, etag)| etag);
    if not_modified(&req, etag) {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, etag.clone()))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .insert_header((header::VARY, "Accept-Encoding"))
            .finish();
    }
    let mut response = HttpResponse::Ok();
    response
        .content_type(served.asset.content_type)
        .insert_header((header::ETAG, etag.clone()))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::VARY, "Accept-Encoding"));
    // For HEAD, actix-web drops the body and keeps its Content-Length.
    match gzip {
        Some((packed, _)) => response.insert_header((header::CONTENT_ENCODING, "gzip")).body(packed.clone()),
        None => response.body(served.asset.body),
    }
}

fn serve(cfg: &mut web::ServiceConfig, assets: &'static [Served]) {
    for served in assets {
        let handler = move |req: HttpRequest| respond(req, served);
        cfg.service(super::resource(
            served.asset.path,
            [(Method::GET, web::to(handler)), (Method::HEAD, web::to(handler))],
        ));
    }
}

/// Registers the SDK on every node and the pages on nodes with a websocket.
pub fn configure(cfg: &mut web::ServiceConfig, role: Role) {
    serve(cfg, &SDK_SERVED);
    if role != Role::Relay {
        serve(cfg, &PAGES_SERVED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn entity_tags_are_strong_and_follow_the_content() {
        let tag = entity_tag(b"a");
        let text = tag.to_str().unwrap();
        assert!(text.starts_with('"') && text.ends_with('"') && !text.starts_with("W/"));
        assert_eq!(text.len(), 34);
        assert_ne!(tag, entity_tag(b"b"));
        assert_eq!(SDK_SERVED[0].etag, entity_tag(SDK[0].body));
    }

    #[test]
    fn text_assets_are_kept_gzipped_and_decode_to_themselves() {
        use std::io::Read;
        for served in SDK_SERVED.iter().chain(PAGES_SERVED.iter()) {
            let (packed, etag) = served.gzip.as_ref().expect("text compresses");
            assert!(packed.len() < served.asset.body.len() / 2, "{}", served.asset.path);
            assert_ne!(etag, &served.etag);
            let mut unpacked = Vec::new();
            flate2::read::GzDecoder::new(&packed[..]).read_to_end(&mut unpacked).unwrap();
            assert_eq!(unpacked, served.asset.body, "{}", served.asset.path);
        }
    }

    #[test]
    fn accept_encoding_is_read_with_its_q_values() {
        let with =
            |value: &str| TestRequest::default().insert_header((header::ACCEPT_ENCODING, value)).to_http_request();
        assert!(accepts_gzip(&with("gzip, deflate, br, zstd")));
        assert!(accepts_gzip(&with("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&with("*")));
        assert!(!accepts_gzip(&with("gzip;q=0")));
        assert!(!accepts_gzip(&with("gzip; q=0.000, br")));
        assert!(!accepts_gzip(&with("identity")));
        assert!(!accepts_gzip(&TestRequest::default().to_http_request()));
    }

    #[test]
    fn if_none_match_lists_star_and_weak_forms_match() {
        let tag = entity_tag(b"x");
        let text = tag.to_str().unwrap().to_owned();
        let with = |value: &str| TestRequest::default().insert_header((header::IF_NONE_MATCH, value)).to_http_request();
        assert!(not_modified(&with(&text), &tag));
        assert!(not_modified(&with(&format!("\"other\", W/{text}")), &tag));
        assert!(not_modified(&with("*"), &tag));
        assert!(!not_modified(&with("\"other\""), &tag));
        assert!(!not_modified(&TestRequest::default().to_http_request(), &tag));
    }
}
