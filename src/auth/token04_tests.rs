//! Known-answer vectors from ZEGO's own generators, and everything that must not pass.
//!
//! The CBC vectors were made by running ZEGO's Node.js `generateToken04`
//! (`zego_server_assistant`, token/nodejs/token04/server/zegoServerAssistant.js) with its clock
//! and `Math.random` pinned; the GCM vectors by its Python `generate_token04`
//! (token/python/token04/src/token04.py, pycryptodome) with `time.time` pinned and
//! `random.seed(n)`. `tests/browser/token04.mjs` reproduces every one of them byte for byte.

use super::*;
use crate::auth::token::LEEWAY_SECS;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SECRET: &[u8] = b"fa94dd0f974cf2e293728a526b028271";
const APP: u32 = 1_234_567_890;
const CTIME: i64 = 1_700_000_000;
const EXPIRE: i64 = CTIME + 3600;

/// GCM, basic token (payload ""); Python generator, seed 7: plaintext nonce 43464098.
const GCM_BASIC: &str = "04AAAAAGVT/xAADDlwMzR5Nm4zd2QyNQB8kpf92Iu4B7foIQXoaqWr0jJ4SvyO0qZzQYsaEAHZm5znKZnibhN1fUjfQz51kUGhxZ6+uIYKwk1kDbCfHKzrRcqbfDkTq4hFSFqVlgSxn7H1brlhVjFSL+dYoTGGf+VXy9tmar/QdCw4LBjTXkH4lTaVant7eyLxS59pSAE=";
/// GCM, payload `{"room_id":"room-1","privilege":{"1":1,"2":1},"stream_id_list":["cam-1"]}`;
/// seed 3: nonce 31939072.
const GCM_ROOM1_PUBLISH_CAM1: &str = "04AAAAAGVT/xAADHk4bnU0MHVnemVjdQDT5d78BAqNVy3CVcUvpTJYBiYVTkFquI9VBeSWxtAd7B2vWk2FFro9s0OyH7QExfrc5CeqL8iTKi5IZVt/VEzHQbL6EiIsQHi33Fm+nWhVBoJbimx51pvByHnnxlcnWds9p5Xs1facxUrOLDzJAa3vbYF+wy/ete0gxGGr1WXP+mKQsPUdcJbYYHQ3fiiuW63x1ME7FkwKtle1+Q/oNxZVm5ZEhYOpRrXK1YgCLZUESlLgaA438Pc+OhdB5/TCI3lR+LSO5ENRhK6kUqpmJOZUi7W95wE=";
/// GCM, payload `{"room_id":"","privilege":{"1":0,"2":1},"stream_id_list":null}`; seed 5.
const GCM_NO_LOGIN: &str = "04AAAAAGVT/xAADGdteDF0ZjNhN251ZgDGNvVUxN7oA5OOgI1opp/QYQ6pMWqnXG8YKGTRwWXiq/2NnkY8lJHxA8ojddzmjKDqyCmZxGEv8wLAIQgd6Kcsnikzm5yX5NOGYxJma8m8JJBbkW9WOzOn/skvZN15Y6XAz+eULEjFcYmkmySRbiKs6sWY0wxtg44jQUR7ywsT6Ab9pLJHkvMnaiJ/YgPxIGWc8LpuJML+YUk1xqyHpCAEIW5K4ISex5ueDNZJZbmJXjVpUHKUQkohvZrR1cDv7wlRH8CqGwqMAQ==";
/// CBC, basic token; Node generator: plaintext nonce 536870912, IV "37aeilpsw15cgjnr".
const CBC_BASIC: &str = "04AAAAAGVT/xAAEDM3YWVpbHBzdzE1Y2dqbnIAcHA9TdGehgUv+CnTOeClD0azgo4D2bQdGt2fZC9mncd0EUUmOQBTrRMjQqRJVWS1wZLjKFCXd/85dL1FeDg7XZe+iu1p99vEHqiLXhnBYxFLvLXAMEKVQ3Qd0bGlUH33nByvhX9p2jHZ9q+UWW2jsEg=";
/// CBC, payload `{"room_id":"room-1","privilege":{"1":1,"2":0},"stream_id_list":null}`;
/// nonce 1610612736.
const CBC_ROOM1_LOGIN_ONLY: &str = "04AAAAAGVT/xAAEGFsdzRmcDBibnozN2ZqcnYAwBDcfBynAS/njWmawemWihI/vl1pDBOM9Z3ObkuRFYiW6HTkTUKjt/eN7k4Rc9wiFMoNkyDftkgKvYfEXlkbGFdnxB3U187LT8nZJcwmqwHPqqNnFcn5r7nVxKq44R6k8uKwu6bZKXqkP6EtLRH8JktnALo1KRZtvtlCFR0a51g7sbbcqzn6mWrUmYSvlNWSlUK4y0kszCYfEPsSJyww40+vjFYFD8INpHGbFIOq2mQ5iinBIkAh2LYGgoPZzJpY3A==";
/// CBC, payload `{"room_id":"room-1","privilege":{"1":1,"2":1},"stream_id_list":["cam-1"]}`;
/// nonce 1073741824.
const CBC_ROOM1_PUBLISH_CAM1: &str = "04AAAAAGVT/xAAEGJsdzRmcTFjb3o0OGdrc3cA0BGzPSGevgvN6Pgq/uwKawtedcOiW6AyP168/ZcEsKeiV5hv+U53uDDxq+7ctwQbkKrhzMuC5NL/5lsvfRxbM1Vz1wwwv9PCtm3l8yvTB9pEUXOvht7kO409ZUILIwSWV0i0IEQyF188KMdOiII0H2NUkca31S4OATjwp4cbirxYF+9ZUv2cFiwaIz5q330oULpHvqRxTVc3/ZXBtwH4+NqfXSik+dr5Ikk6rGlJLl0pJiT2LblyPVhFgGaXuaYtF32zWENQFJnc3ncw9e8K1GM=";

const ALL: [&str; 6] =
    [GCM_BASIC, GCM_ROOM1_PUBLISH_CAM1, GCM_NO_LOGIN, CBC_BASIC, CBC_ROOM1_LOGIN_ONLY, CBC_ROOM1_PUBLISH_CAM1];

fn expect(room: &str) -> Expected<'_> {
    Expected { app_id: APP, user_id: "alice", room_id: Some(room) }
}

fn at(now: i64, token: &str, room: &str) -> Result<Claims, TokenError> {
    verify(token, SECRET, expect(room), now)
}

fn raw(token: &str) -> Vec<u8> {
    STANDARD.decode(&token[2..]).unwrap()
}

fn wrap(bytes: &[u8]) -> String {
    format!("04{}", STANDARD.encode(bytes))
}

/// A GCM token around any plaintext, laid out like ZEGO's generators (to build what they
/// never would: other payloads, broken JSON, other expiries).
fn seal_gcm(plain: &[u8], outer_expire: i64, secret: &[u8]) -> String {
    let nonce = *b"0123456789ab";
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, secret).unwrap());
    let mut data = plain.to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data).unwrap();
    let mut frame = outer_expire.to_be_bytes().to_vec();
    frame.extend((nonce.len() as u16).to_be_bytes());
    frame.extend(nonce);
    frame.extend((data.len() as u16).to_be_bytes());
    frame.extend(&data);
    frame.push(MODE_GCM);
    wrap(&frame)
}

fn plaintext(payload: &str, ctime: i64, expire: i64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "app_id": APP, "user_id": "alice", "nonce": -5, "ctime": ctime, "expire": expire, "payload": payload,
    }))
    .unwrap()
}

#[test]
fn zego_generator_vectors_open_to_what_they_were_made_from() {
    let expected = [
        (GCM_BASIC, Cipher::Gcm, 43_464_098, ""),
        (
            GCM_ROOM1_PUBLISH_CAM1,
            Cipher::Gcm,
            31_939_072,
            r#"{"room_id":"room-1","privilege":{"1":1,"2":1},"stream_id_list":["cam-1"]}"#,
        ),
        (GCM_NO_LOGIN, Cipher::Gcm, 83_604_451, r#"{"room_id":"","privilege":{"1":0,"2":1},"stream_id_list":null}"#),
        (CBC_BASIC, Cipher::Cbc, 536_870_912, ""),
        (
            CBC_ROOM1_LOGIN_ONLY,
            Cipher::Cbc,
            1_610_612_736,
            r#"{"room_id":"room-1","privilege":{"1":1,"2":0},"stream_id_list":null}"#,
        ),
        (
            CBC_ROOM1_PUBLISH_CAM1,
            Cipher::Cbc,
            1_073_741_824,
            r#"{"room_id":"room-1","privilege":{"1":1,"2":1},"stream_id_list":["cam-1"]}"#,
        ),
    ];
    for (token, cipher, nonce, payload) in expected {
        let opened = open(token, SECRET).unwrap();
        let want = Token04 {
            app_id: APP,
            user_id: "alice".into(),
            ctime: CTIME,
            expire: EXPIRE,
            nonce,
            payload: payload.into(),
        };
        assert_eq!(opened, (want, cipher), "{token}");
    }
}

#[test]
fn the_test_sealer_matches_zegos_layout_byte_for_byte() {
    // Re-sealing the GCM vector's own plaintext with its nonce gives the vector back: the
    // other tests' hand-made tokens are laid out exactly like ZEGO's.
    let bytes = raw(GCM_BASIC);
    let nonce: [u8; 12] = bytes[10..22].try_into().unwrap();
    let plain = br#"{"app_id":1234567890,"user_id":"alice","nonce":43464098,"ctime":1700000000,"expire":1700003600,"payload":""}"#;
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, SECRET).unwrap());
    let mut data = plain.to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data).unwrap();
    let mut frame = EXPIRE.to_be_bytes().to_vec();
    frame.extend(12u16.to_be_bytes());
    frame.extend(nonce);
    frame.extend((data.len() as u16).to_be_bytes());
    frame.extend(&data);
    frame.push(MODE_GCM);
    assert_eq!(wrap(&frame), GCM_BASIC);
}

#[test]
fn a_basic_token_is_zegos_non_strict_mode_any_room_and_any_stream() {
    for token in [GCM_BASIC, CBC_BASIC] {
        let claims = at(CTIME + 10, token, "any-room").unwrap();
        assert_eq!(claims.iss, ISSUER);
        assert_eq!((claims.app_id, claims.user_id.as_str()), (APP, "alice"));
        assert_eq!((claims.iat, claims.nbf, claims.exp), (CTIME, CTIME, EXPIRE));
        assert_eq!(claims.room_id, None);
        assert_eq!(claims.privileges, Privileges { login_room: true, publish_stream: true });
        assert_eq!(claims.stream_ids, None);
        assert!(claims.may_publish("whatever-stream"));
    }
}

#[test]
fn a_privilege_token_binds_room_publish_right_and_streams() {
    for token in [GCM_ROOM1_PUBLISH_CAM1, CBC_ROOM1_PUBLISH_CAM1] {
        let claims = at(CTIME, token, "room-1").unwrap();
        assert_eq!(claims.room_id.as_deref(), Some("room-1"));
        assert_eq!(claims.privileges, Privileges { login_room: true, publish_stream: true });
        assert!(claims.may_publish("cam-1"));
        assert!(!claims.may_publish("cam-2"), "a stream outside stream_id_list");
        assert!(matches!(at(CTIME, token, "room-2"), Err(TokenError::RoomMismatch)));
    }
    let login_only = at(CTIME, CBC_ROOM1_LOGIN_ONLY, "room-1").unwrap();
    assert_eq!(login_only.privileges, Privileges { login_room: true, publish_stream: false });
    assert!(!login_only.may_publish("cam-1"), "privilege 2 = 0: no publishing");
    assert!(matches!(at(CTIME, GCM_NO_LOGIN, "room-1"), Err(TokenError::NoLoginPrivilege)));
}

#[test]
fn strict_payload_details() {
    let cases = [
        // An absent bit refuses; only exactly 1 grants.
        (r#"{"room_id":"room-1","privilege":{"1":1}}"#, Ok((true, false, None))),
        (r#"{"room_id":"room-1","privilege":{"1":2,"2":1}}"#, Err("login")),
        (r#"{"room_id":"room-1"}"#, Err("login")),
        // Empty room and empty list do not restrict (ZEGO's rule).
        (r#"{"room_id":"","privilege":{"1":1,"2":1},"stream_id_list":[]}"#, Ok((true, true, None))),
        (r#"{"privilege":{"1":1,"2":1},"stream_id_list":["a","b"],"later_field":7}"#, Ok((true, true, Some(2)))),
        ("not json", Err("malformed")),
        (r#"["1"]"#, Err("malformed")),
        (r#"{"privilege":{"1":"yes"}}"#, Err("malformed")),
        (r#"{"stream_id_list":"cam-1","privilege":{"1":1}}"#, Err("malformed")),
    ];
    for (payload, want) in cases {
        let token = seal_gcm(&plaintext(payload, CTIME, EXPIRE), EXPIRE, SECRET);
        let got = at(CTIME, &token, "room-1");
        match (want, got) {
            (Ok((login, publish, streams)), Ok(claims)) => {
                assert_eq!(claims.privileges, Privileges { login_room: login, publish_stream: publish }, "{payload}");
                assert_eq!(claims.stream_ids.map(|s| s.len()), streams, "{payload}");
            }
            (Err("login"), Err(TokenError::NoLoginPrivilege)) => {}
            (Err("malformed"), Err(TokenError::Malformed(_))) => {}
            (want, got) => panic!("{payload}: wanted {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn time_is_the_injected_clock_with_the_jwt_leeway() {
    for token in ALL.into_iter().filter(|t| *t != GCM_NO_LOGIN) {
        assert!(at(EXPIRE + LEEWAY_SECS, token, "room-1").is_ok(), "{token}");
        assert!(matches!(at(EXPIRE + LEEWAY_SECS + 1, token, "room-1"), Err(TokenError::Expired)));
        assert!(at(CTIME - LEEWAY_SECS, token, "room-1").is_ok());
        assert!(matches!(at(CTIME - LEEWAY_SECS - 1, token, "room-1"), Err(TokenError::NotYetValid)));
    }
    // ctime sanity: a token that expires before it was made is nonsense, whoever made it.
    let backwards = seal_gcm(&plaintext("", CTIME, CTIME - 1), CTIME - 1, SECRET);
    assert!(matches!(at(CTIME - 10, &backwards, "room-1"), Err(TokenError::Malformed(_))));
}

#[test]
fn app_and_user_are_bound() {
    for token in ALL.into_iter().filter(|t| *t != GCM_NO_LOGIN) {
        // Another app that happens to share the secret: decrypts, names app 1234567890.
        let other_app = Expected { app_id: APP + 1, ..expect("room-1") };
        assert!(matches!(verify(token, SECRET, other_app, CTIME), Err(TokenError::AppMismatch)), "{token}");
        let bob = Expected { user_id: "bob", ..expect("room-1") };
        assert!(matches!(verify(token, SECRET, bob, CTIME), Err(TokenError::UserMismatch)));
    }
}

#[test]
fn another_secret_does_not_open_them() {
    let other = b"0123456789abcdef0123456789abcdef";
    for token in ALL {
        assert!(matches!(verify(token, other, expect("room-1"), CTIME), Err(TokenError::BadSignature)), "{token}");
    }
    // A Huddle-generated secret (64 hex characters) is no ZEGO ServerSecret.
    let huddle_secret = "ab".repeat(32);
    for token in ALL {
        assert!(matches!(
            verify(token, huddle_secret.as_bytes(), expect("room-1"), CTIME),
            Err(TokenError::SecretNotZego)
        ));
    }
}

#[test]
fn changed_fields_are_refused_with_their_codes() {
    let gcm = raw(GCM_BASIC);
    let data_end = gcm.len() - 1;
    let flip = |bytes: &[u8], at: usize| {
        let mut b = bytes.to_vec();
        b[at] ^= 0x01;
        wrap(&b)
    };
    let check = |token: String| verify(&token, SECRET, expect("room-1"), CTIME);
    // The unencrypted expiry no longer matches the encrypted one.
    assert!(matches!(check(flip(&gcm, 7)), Err(TokenError::BadSignature)));
    // Nonce, ciphertext and tag are all covered by GCM's tag.
    assert!(matches!(check(flip(&gcm, 10)), Err(TokenError::BadSignature)));
    assert!(matches!(check(flip(&gcm, 30)), Err(TokenError::BadSignature)));
    assert!(matches!(check(flip(&gcm, data_end - 1)), Err(TokenError::BadSignature)));
    // Lengths and the mode byte break the frame itself.
    assert!(matches!(check(flip(&gcm, 9)), Err(TokenError::Malformed(_))));
    assert!(matches!(check(flip(&gcm, 23)), Err(TokenError::Malformed(_))));
    assert!(matches!(check(flip(&gcm, data_end)), Err(TokenError::Malformed(_))), "mode 1 -> 0: a 12-byte CBC IV");
    let mut mode2 = gcm.clone();
    mode2[data_end] = 2;
    assert!(matches!(check(wrap(&mode2)), Err(TokenError::Malformed(_))));
    let mut longer = gcm.clone();
    longer.push(0);
    assert!(matches!(check(wrap(&longer)), Err(TokenError::Malformed(_))));
    // The GCM tag cut off (mode byte gone too): read as CBC with a 12-byte IV.
    assert!(matches!(check(wrap(&gcm[..data_end])), Err(TokenError::Malformed(_))));

    let cbc = raw(CBC_BASIC);
    assert!(matches!(check(flip(&cbc, 7)), Err(TokenError::BadSignature)));
    assert!(matches!(check(flip(&cbc, cbc.len() - 1)), Err(TokenError::BadSignature)), "last block: padding");
    assert!(matches!(check(flip(&cbc, 40)), Err(TokenError::BadSignature)), "a middle block: garbage JSON");
    assert!(matches!(check(flip(&cbc, 9)), Err(TokenError::Malformed(_))));
}

#[test]
fn every_single_byte_change_and_every_truncation_fails() {
    for token in ALL {
        let bytes = raw(token);
        for position in 0..bytes.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut changed = bytes.clone();
                changed[position] ^= mask;
                let result = verify(&wrap(&changed), SECRET, expect("room-1"), CTIME);
                assert!(result.is_err(), "{token}: byte {position} ^ {mask:#x} accepted: {result:?}");
            }
        }
        for len in 0..bytes.len() {
            assert!(verify(&wrap(&bytes[..len]), SECRET, expect("room-1"), CTIME).is_err());
        }
        for len in 0..token.len() {
            assert!(verify(&token[..len], SECRET, expect("room-1"), CTIME).is_err(), "text cut at {len}");
        }
    }
}

#[test]
fn bad_text_is_malformed() {
    for text in ["04", "04!!!!", "04AAAA", "04 AAAA", "04AAAAAGVT/xAADDlwMzR5Nm4zd2QyNQ", "04\u{0}\u{ff}", "04===="] {
        assert!(matches!(verify(text, SECRET, expect("room-1"), CTIME), Err(TokenError::Malformed(_))), "{text:?}");
    }
    let long = format!("04{}", "A".repeat(MAX_TOKEN_LEN + 4));
    assert!(matches!(verify(&long, SECRET, expect("room-1"), CTIME), Err(TokenError::Malformed(_))));
    // GCM plaintext that is not ZEGO's JSON: authenticated, so malformed rather than forged.
    for plain in [
        &b"not json"[..],
        br#"{"app_id":-1,"user_id":"alice","ctime":1,"expire":2,"nonce":1}"#,
        br#"[1234567890,"alice",1,2,1,""]"#,
    ] {
        let token = seal_gcm(plain, 2, SECRET);
        assert!(matches!(verify(&token, SECRET, expect("room-1"), CTIME), Err(TokenError::Malformed(_))));
    }
}

#[test]
fn nothing_in_a_token_panics() {
    let mut rng = StdRng::seed_from_u64(0x04_2026);
    let originals: Vec<Vec<u8>> = ALL.iter().map(|t| raw(t)).collect();
    for round in 0..20_000 {
        let bytes: Vec<u8> = match round % 4 {
            // Pure noise.
            0 => (0..rng.random_range(0..300)).map(|_| rng.random()).collect(),
            // A real token with random bytes overwritten.
            1 => {
                let mut b = originals[round % originals.len()].clone();
                for _ in 0..rng.random_range(1..6) {
                    let i = rng.random_range(0..b.len());
                    b[i] = rng.random();
                }
                b
            }
            // A real token cut short or extended with noise.
            2 => {
                let mut b = originals[round % originals.len()].clone();
                b.truncate(rng.random_range(0..=b.len()));
                b.extend((0..rng.random_range(0..4)).map(|_| rng.random::<u8>()));
                b
            }
            // A plausible frame: lengths that may or may not fit, either mode.
            _ => {
                let mut b = rng.random::<i64>().to_be_bytes().to_vec();
                let nonce_len: u16 = [12, 16, 0, u16::MAX, rng.random()][rng.random_range(0..5)];
                b.extend(nonce_len.to_be_bytes());
                b.extend((0..usize::from(nonce_len).min(64)).map(|_| rng.random::<u8>()));
                let data_len: u16 = [16, 32, 17, u16::MAX, rng.random()][rng.random_range(0..5)];
                b.extend(data_len.to_be_bytes());
                b.extend((0..usize::from(data_len).min(96)).map(|_| rng.random::<u8>()));
                if rng.random() {
                    b.push(rng.random_range(0..3));
                }
                b
            }
        };
        let _ = verify(&wrap(&bytes), SECRET, expect("room-1"), CTIME);
        let _ = verify(&wrap(&bytes), SECRET, expect("room-1"), rng.random());
        let text: String = (0..rng.random_range(0..64)).map(|_| rng.random::<char>()).collect();
        let _ = verify(&format!("04{text}"), SECRET, expect("room-1"), CTIME);
    }
}

#[test]
fn login_takes_either_format() {
    use crate::auth::token::{TokenSpec, issue, verify_login};
    for token in [GCM_BASIC, CBC_BASIC] {
        assert!(verify_login(token, SECRET, expect("room-1"), CTIME).is_ok());
    }
    let spec = TokenSpec { user_id: "alice".into(), ..TokenSpec::default() };
    let jwt = issue(APP, SECRET, &spec, CTIME).unwrap();
    assert_eq!(verify_login(&jwt.token, SECRET, expect("room-1"), CTIME).unwrap(), jwt.claims);
}
