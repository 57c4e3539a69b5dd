//! Cost of the per-request crypto: token sign/verify and request-signature verification.
//! Run: `cargo bench --bench auth`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use huddle::auth::signature::{self, SignedHeaders};
use huddle::auth::token::{self, Expected, TokenSpec};
use huddle::auth::{Privileges, unix_now};

const SECRET: &[u8] = b"5f4dcc3b5aa765d61d8327deb882cf995f4dcc3b5aa765d61d8327deb882cf99";

fn tokens(c: &mut Criterion) {
    let spec = TokenSpec {
        user_id: "alice@corp".into(),
        room_id: Some("room-1".into()),
        privileges: Privileges { login_room: true, publish_stream: true },
        stream_ids: Some(vec!["cam-1".into()]),
        ttl_secs: None,
    };
    let now = unix_now();
    c.bench_function("token_issue", |b| b.iter(|| token::issue(7, SECRET, black_box(&spec), now)));
    let issued = token::issue(7, SECRET, &spec, now).expect("issue");
    let expected = Expected { app_id: 7, user_id: "alice@corp", room_id: Some("room-1") };
    c.bench_function("token_verify", |b| b.iter(|| token::verify(black_box(&issued.token), SECRET, expected, now)));
}

fn signatures(c: &mut Criterion) {
    let body = br#"{"userId":"alice@corp","roomId":"room-1","privileges":{"loginRoom":true,"publishStream":true}}"#;
    let now = unix_now();
    let sig = signature::sign(SECRET, 7, now, "n0nce-1234", "POST", "/v1/tokens", body);
    let headers = [
        ("x-huddle-appid", "7".to_owned()),
        ("x-huddle-timestamp", now.to_string()),
        ("x-huddle-nonce", "n0nce-1234".to_owned()),
        ("x-huddle-signature", sig),
    ];
    let get = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
    c.bench_function("request_signature_parse_and_verify", |b| {
        b.iter(|| {
            let parsed = SignedHeaders::parse(get).expect("headers");
            parsed.check_timestamp(now).expect("fresh");
            parsed.verify(SECRET, "POST", "/v1/tokens", black_box(body))
        })
    });
}

criterion_group!(benches, tokens, signatures);
criterion_main!(benches);
