//! What browsers get from the real binary: the embedded SDK and demo assets (types, ETags,
//! 304, HEAD), CORS for pages on other origins, the allowed-origins check on the websocket,
//! and relay URLs built from the host the client used.

mod common;

use common::*;
use huddle::loadtest::peer::{PendingPeer, Role};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

const ASSETS: &[(&str, &str)] = &[
    ("/sdk/huddle-express.js", "text/javascript; charset=utf-8"),
    ("/sdk/huddle-express.mjs", "text/javascript; charset=utf-8"),
    ("/sdk/huddle-express.d.ts", "text/plain; charset=utf-8"),
    ("/", "text/html; charset=utf-8"),
    ("/demo/demo.css", "text/css; charset=utf-8"),
    ("/demo/demo.js", "text/javascript; charset=utf-8"),
    ("/examples/quickstart.html", "text/html; charset=utf-8"),
];

/// The bytes compiled into the binary for `path` (the files in `sdk/` may have changed since).
fn embedded(path: &str) -> &'static [u8] {
    let assets = huddle::api::assets::SDK.iter().chain(huddle::api::assets::PAGES);
    assets.into_iter().find(|asset| asset.path == path).unwrap_or_else(|| panic!("{path} is not embedded")).body
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

fn lower_list(value: Option<&str>) -> Vec<String> {
    value.unwrap_or_default().split(',').map(|s| s.trim().to_ascii_lowercase()).collect()
}

async fn setup(options: ServerOptions<'_>) -> (TestDb, TestApp, Server) {
    let db = TestDb::new(Db::Sqlite).await;
    let app = create_app(&db);
    let server = Server::start_with(&db, options);
    (db, app, server)
}

#[tokio::test]
async fn sdk_and_demo_are_served_with_their_types_and_revalidated_by_etag() {
    // A configured database: dev mode is off, and the demo page is still served.
    let (_db, _app, server) = setup(ServerOptions::default()).await;
    for (path, content_type) in ASSETS {
        let expected = embedded(path);
        let response = server.http.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(header(&response, "content-type"), Some(*content_type), "{path}");
        assert_eq!(header(&response, "cache-control"), Some("no-cache"), "{path}");
        let etag = header(&response, "etag").expect("etag").to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "strong etag for {path}: {etag}");
        assert!(response.bytes().await.unwrap() == expected, "{path} is not the embedded file");

        let again = server.http.get(server.url(path)).header("if-none-match", &etag).send().await.unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(header(&again, "etag"), Some(etag.as_str()));
        assert!(again.bytes().await.unwrap().is_empty());
        let stale = server.http.get(server.url(path)).header("if-none-match", "\"other\"").send().await.unwrap();
        assert_eq!(stale.status(), 200, "{path}");

        // Browsers accept gzip: the same bytes, compressed, under their own entity tag.
        let packed = server.http.get(server.url(path)).header("accept-encoding", "gzip, br").send().await.unwrap();
        assert_eq!(packed.status(), 200, "{path}");
        assert_eq!(header(&packed, "content-encoding"), Some("gzip"), "{path}");
        assert!(lower_list(header(&packed, "vary")).contains(&"accept-encoding".to_owned()), "{path}");
        let packed_etag = header(&packed, "etag").expect("etag").to_owned();
        assert_ne!(packed_etag, etag, "{path}: each encoding has its own tag");
        let bytes = packed.bytes().await.unwrap();
        assert!(bytes.len() < expected.len() / 2, "{path}: {} of {} bytes", bytes.len(), expected.len());
        let mut unpacked = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut unpacked).unwrap();
        assert!(unpacked == expected, "{path}: gzip decodes to the embedded file");
        let packed_again = server
            .http
            .get(server.url(path))
            .header("accept-encoding", "gzip")
            .header("if-none-match", &packed_etag)
            .send()
            .await
            .unwrap();
        assert_eq!(packed_again.status(), 304, "{path}");

        let head = server.http.head(server.url(path)).send().await.unwrap();
        assert_eq!(head.status(), 200, "HEAD {path}");
        assert_eq!(header(&head, "etag"), Some(etag.as_str()));
        assert_eq!(header(&head, "content-length"), Some(expected.len().to_string().as_str()), "HEAD {path}");
        assert!(head.bytes().await.unwrap().is_empty());
    }
    let (status, body) = server.get("/sdk/nothing.js").await;
    assert_eq!(status, 404);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["code"], 1001);
    let posted = server.http.post(server.url("/sdk/huddle-express.js")).send().await.unwrap();
    assert_eq!(posted.status(), 405);
}

/// A preflight as a browser sends it before a cross-origin request with these headers.
async fn preflight(server: &Server, path: &str, origin: &str, method: &str, headers: &str) -> reqwest::Response {
    let mut request = server
        .http
        .request(Method::OPTIONS, server.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method);
    if !headers.is_empty() {
        request = request.header("access-control-request-headers", headers);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn pages_on_other_origins_pass_preflights_and_read_location() {
    let (_db, app, server) = setup(ServerOptions { dev: Some(true), ..Default::default() }).await;
    let origin = "http://other.example";
    for (path, method, headers) in [
        ("/relay/v1/publish/x", "POST", "authorization,content-type"),
        ("/relay/v1/play/x", "POST", "authorization,content-type"),
        ("/relay/v1/sessions/abc", "DELETE", "authorization"),
        ("/v1/tokens", "POST", "content-type,x-huddle-appid,x-huddle-timestamp,x-huddle-nonce,x-huddle-signature"),
        ("/v1/grants", "POST", "content-type,x-huddle-signature"),
        ("/dev/token", "GET", ""),
        ("/sdk/huddle-express.mjs", "GET", ""),
    ] {
        let response = preflight(&server, path, origin, method, headers).await;
        assert!(response.status().is_success(), "preflight {method} {path}: {}", response.status());
        assert_eq!(header(&response, "access-control-allow-origin"), Some(origin), "{path}");
        assert!(lower_list(header(&response, "access-control-allow-methods")).contains(&method.to_ascii_lowercase()));
        let allowed = lower_list(header(&response, "access-control-allow-headers"));
        for wanted in headers.split(',').filter(|h| !h.is_empty()) {
            assert!(allowed.contains(&wanted.to_owned()), "{path}: {wanted} not in {allowed:?}");
        }
        assert_eq!(header(&response, "access-control-max-age"), Some("600"));
    }

    // The real exchange: offer in, answer out, Location readable by the page, then DELETE.
    let body = json!({"roomId": "room-1", "userId": "u", "streamId": "cam", "action": "publish"}).to_string();
    let (status, reply) = server.signed_post(&app, "/v1/grants", &body).await;
    assert_eq!(status, 200, "{reply}");
    let (_pending, offer) = PendingPeer::offer(Role::Publish, "127.0.0.1".parse().unwrap()).unwrap();
    let response = server
        .http
        .post(reply["url"].as_str().unwrap())
        .header("origin", origin)
        .header("authorization", format!("Bearer {}", reply["grant"].as_str().unwrap()))
        .header("content-type", "application/sdp")
        .body(offer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(header(&response, "access-control-allow-origin"), Some(origin));
    assert!(lower_list(header(&response, "access-control-expose-headers")).contains(&"location".to_owned()));
    let location = header(&response, "location").expect("location").to_owned();
    let ended = server.http.delete(server.url(&location)).header("origin", origin).send().await.unwrap();
    assert_eq!(ended.status(), 204);
    assert_eq!(header(&ended, "access-control-allow-origin"), Some(origin));

    let token =
        server.http.get(server.url("/dev/token?userId=alice&roomId=r1")).header("origin", origin).send().await.unwrap();
    assert_eq!(token.status(), 200);
    assert_eq!(header(&token, "access-control-allow-origin"), Some(origin));
    // Errors carry the CORS headers too, so the page can read their code.
    let refused = server.http.get(server.url("/nowhere")).header("origin", origin).send().await.unwrap();
    assert_eq!(refused.status(), 404);
    assert_eq!(header(&refused, "access-control-allow-origin"), Some(origin));
}

#[tokio::test]
async fn allowed_origins_guard_the_websocket_and_cors() {
    let env = vec![("HUDDLE_ALLOWED_ORIGINS", "http://a.example".to_owned())];
    let (_db, _app, server) = setup(ServerOptions { extra_env: env, ..Default::default() }).await;

    match ws::upgrade(&server.base, &[("origin", "http://b.example")]).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
            let body: Value = serde_json::from_slice(response.body().as_deref().expect("body")).unwrap();
            assert_eq!(body["code"], 5022, "{body}");
        }
        other => panic!("expected a refused upgrade, got {:?}", other.map(|_| ())),
    }
    ws::WsClient::connect_with(&server.base, &[("origin", "http://a.example")]).await;
    ws::WsClient::connect_with(&server.base, &[]).await;
    // A page served by Huddle itself (the demo page) is same-origin.
    ws::WsClient::connect_with(&server.base, &[("origin", &server.base)]).await;
    // The scheme is part of the origin, and a DNS name in Host is not trusted as Huddle's own
    // (DNS rebinding: an attacker's name pointed at Huddle sends a matching Host and Origin).
    let port = server.base.rsplit(':').next().unwrap();
    let rebound = format!("evil.example:{port}");
    let https_self = server.base.replacen("http://", "https://", 1);
    for headers in [
        vec![("origin", https_self.as_str())],
        vec![("host", rebound.as_str()), ("origin", &*format!("http://{rebound}"))],
    ] {
        match ws::upgrade(&server.base, &headers).await {
            Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403, "{headers:?}"),
            other => panic!("{headers:?}: expected a refused upgrade, got {:?}", other.map(|_| ())),
        }
    }
    assert!(server.metrics().await.contains(r#"huddle_errors_total{code="5022",name="OriginNotAllowed"} 3"#));

    let allowed = preflight(&server, "/relay/v1/publish/x", "http://a.example", "POST", "authorization").await;
    assert!(allowed.status().is_success());
    assert_eq!(header(&allowed, "access-control-allow-origin"), Some("http://a.example"));
    let other = preflight(&server, "/relay/v1/publish/x", "http://b.example", "POST", "authorization").await;
    assert!(!other.status().is_success(), "preflight from an origin not listed: {}", other.status());
    assert_eq!(header(&other, "access-control-allow-origin"), None);
    // A simple request from another origin is answered without CORS headers (unreadable).
    let simple = server.http.get(server.url("/healthz")).header("origin", "http://b.example").send().await.unwrap();
    assert_eq!(simple.status(), 200);
    assert_eq!(header(&simple, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn relay_urls_follow_the_host_the_client_used() {
    let (_db, app, server) = setup(ServerOptions::default()).await;
    let port = server.base.rsplit(':').next().unwrap();
    let host = format!("huddle.test:{port}");
    let headers = [("host", host.as_str()), ("x-forwarded-proto", "https")];
    let mut client = ws::WsClient::connect_with(&server.base, &headers).await;
    let token = mint(&app, "alice", Some("r1"), true);
    client.ok("login", login_data(&app, "r1", "alice", &token, false)).await;
    let grant = client.ok("publishStream", json!({"streamID": "cam", "extraInfo": ""})).await;
    assert_eq!(grant["url"], format!("https://{host}/relay/v1/publish/cam"));

    let body = json!({"roomId": "r1", "userId": "obs", "streamId": "stage", "action": "publish"}).to_string();
    let request = SignedRequest::new(&app, "POST", "/v1/grants", &body).set_header("host", &host);
    let (status, reply) = server.send(&request).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["url"], format!("http://{host}/relay/v1/publish/stage"));
}

/// Every route of a node with dev mode on, and the methods it answers.
fn routes() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut routes = vec![
        ("/v1/tokens", vec!["POST"]),
        ("/v1/grants", vec!["POST"]),
        ("/relay/v1/publish/x", vec!["POST"]),
        ("/relay/v1/play/x", vec!["POST"]),
        ("/relay/v1/sessions/x", vec!["DELETE"]),
        ("/healthz", vec!["GET"]),
        ("/readyz", vec!["GET"]),
        ("/metrics", vec!["GET"]),
        ("/openapi.yaml", vec!["GET"]),
        ("/dev/token", vec!["GET"]),
        ("/ws", vec!["GET"]),
    ];
    routes.extend(ASSETS.iter().map(|(path, _)| (*path, vec!["GET", "HEAD"])));
    routes
}

#[tokio::test]
async fn wrong_methods_get_405_with_allow_and_the_json_error_on_every_route() {
    let (_db, _app, server) = setup(ServerOptions { dev: Some(true), ..Default::default() }).await;
    let methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    for (path, allowed) in routes() {
        for method in methods {
            // A plain OPTIONS (no Origin, no Access-Control-Request-Method) is not a preflight:
            // the CORS layer lets it through to the route, which does not answer it.
            let response = server.http.request(method.parse().unwrap(), server.url(path)).send().await.unwrap();
            let status = response.status().as_u16();
            if allowed.contains(&method) {
                assert_ne!(status, 405, "{method} {path} is allowed");
                continue;
            }
            assert_eq!(status, 405, "{method} {path}");
            let mut allow: Vec<String> = header(&response, "allow")
                .unwrap_or_else(|| panic!("{method} {path}: no Allow"))
                .split(',')
                .map(|m| m.trim().to_owned())
                .collect();
            allow.sort();
            let mut want: Vec<String> = allowed.iter().map(|m| m.to_string()).collect();
            want.sort();
            assert_eq!(allow, want, "Allow of {method} {path}");
            assert_eq!(header(&response, "content-type"), Some("application/json"), "{method} {path}");
            if method == "HEAD" {
                continue;
            }
            let body: Value = serde_json::from_slice(&response.bytes().await.unwrap())
                .unwrap_or_else(|e| panic!("{method} {path}: body is not JSON: {e}"));
            assert_eq!(body["code"], 1002, "{method} {path}: {body}");
            assert!(body["message"].as_str().is_some_and(|m| m.contains(method)), "{method} {path}: {body}");
        }
    }
    // A preflight is still the CORS layer's to answer, on routes that take the method.
    let response = preflight(&server, "/healthz", "http://other.example", "GET", "").await;
    assert!(response.status().is_success(), "{}", response.status());
    assert!(!server.metrics().await.contains(r#"status="500""#));
}
