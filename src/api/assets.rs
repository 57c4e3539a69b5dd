//! The browser SDK and the demo page, compiled into the binary: a business page loads
//! `/sdk/huddle-express.js` (or the `.mjs` module) from the Huddle it talks to, and `/` is a
//! demo call page that works on embedded defaults (it fetches tokens from `/dev/token`).
//!
//! Every file has a strong `ETag` (a hash of its bytes, computed once) and
//! `Cache-Control: no-cache`: browsers keep a copy but ask again each time, and get `304 Not
//! Modified` while the binary has not changed.

use std::sync::LazyLock;

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

/// An asset with its entity tag, hashed once per process.
struct Served {
    asset: &'static Asset,
    etag: HeaderValue,
}

fn hashed(assets: &'static [Asset]) -> Vec<Served> {
    assets.iter().map(|asset| Served { asset, etag: entity_tag(asset.body) }).collect()
}

static SDK_SERVED: LazyLock<Vec<Served>> = LazyLock::new(|| hashed(SDK));
static PAGES_SERVED: LazyLock<Vec<Served>> = LazyLock::new(|| hashed(PAGES));

async fn respond(req: HttpRequest, served: &'static Served) -> HttpResponse {
    if not_modified(&req, &served.etag) {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, served.etag.clone()))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .finish();
    }
    // For HEAD, actix-web drops the body and keeps its Content-Length.
    HttpResponse::Ok()
        .content_type(served.asset.content_type)
        .insert_header((header::ETAG, served.etag.clone()))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(served.asset.body)
}

fn serve(cfg: &mut web::ServiceConfig, assets: &'static [Served]) {
    for served in assets {
        let handler = move |req: HttpRequest| respond(req, served);
        cfg.service(
            web::resource(served.asset.path)
                .route(web::get().to(handler))
                .route(web::head().to(handler))
                .default_service(web::to(super::method_not_allowed)),
        );
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
