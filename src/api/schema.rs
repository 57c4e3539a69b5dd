//! Schemas that exist only in the OpenAPI document: the id rules of [`crate::ids`] as named
//! string schemas (`UserId`, `RoomId`, `StreamId`), so that generated clients check an id
//! before they send it. Lengths come from [`IdKind::max_len`]; the patterns are written here,
//! and the tests below hold the whole document to the server's own checks.

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::ids::IdKind;

/// The characters an id of `kind` may hold, one or more, as an ECMA-262 regular expression (the
/// dialect of JSON Schema's `pattern`); `minLength`/`maxLength` give the length. Every allowed
/// character is ASCII, so JSON Schema's character counts are the byte counts of `ids`.
fn pattern(kind: IdKind) -> &'static str {
    match kind {
        IdKind::User => "^[A-Za-z0-9_.~@:-]+$",
        IdKind::Room | IdKind::Stream => "^[A-Za-z0-9_.~-]+$",
    }
}

fn id_schema(kind: IdKind, noun: &str, example: &str) -> RefOr<Schema> {
    let characters = pattern(kind).trim_start_matches("^[").trim_end_matches("]+$");
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(format!("{noun}: 1–{} bytes of `{characters}`.", kind.max_len())))
        .min_length(Some(1))
        .max_length(Some(kind.max_len()))
        .pattern(Some(pattern(kind)))
        .examples([example])
        .into()
}

macro_rules! id_schemas {
    ($($name:ident: $kind:expr, $noun:literal, $example:literal;)+) => {$(
        #[doc = concat!(stringify!($name), ": ", $noun, ", in the OpenAPI document.")]
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                id_schema($kind, $noun, $example)
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    )+};
}

id_schemas! {
    UserId: IdKind::User, "A user id", "alice";
    RoomId: IdKind::Room, "A room id", "room-1";
    StreamId: IdKind::Stream, "A stream id", "alice-cam";
}

#[cfg(test)]
mod tests {
    //! The document against the server's validators: for every constrained field and header,
    //! a set of values is put both to the schema (through a small JSON Schema checker covering
    //! the keywords the document uses) and to the code that checks requests; they must agree.

    use std::collections::BTreeSet;

    use serde_json::{Value, json};
    use utoipa::OpenApi;

    use crate::api::ApiDoc;
    use crate::api::extract::TtlSeconds;
    use crate::auth::SignedHeaders;
    use crate::auth::{grant, token};
    use crate::ids::{self, IdKind};

    /// Whether `schema` (resolved, no `$ref`) accepts `value`.
    fn schema_accepts(schema: &Value, value: &Value) -> bool {
        let types: Vec<&str> = match &schema["type"] {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            other => panic!("schema without a type: {other} in {schema}"),
        };
        let whole = |n: &serde_json::Number| n.as_f64().is_some_and(|f| f.fract() == 0.0);
        let typed = match value {
            Value::String(_) => types.contains(&"string"),
            Value::Number(n) => types.contains(&"number") || (types.contains(&"integer") && whole(n)),
            Value::Null => types.contains(&"null"),
            _ => false,
        };
        if !typed {
            return false;
        }
        let limit = |keyword: &str| schema.get(keyword).and_then(Value::as_f64);
        if let Some(text) = value.as_str() {
            let chars = text.chars().count() as f64;
            if limit("minLength").is_some_and(|min| chars < min) || limit("maxLength").is_some_and(|max| chars > max) {
                return false;
            }
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
                return regex::Regex::new(pattern).expect("pattern compiles").is_match(text);
            }
        }
        if let Some(number) = value.as_f64() {
            return !limit("minimum").is_some_and(|min| number < min)
                && !limit("maximum").is_some_and(|max| number > max);
        }
        true
    }

    /// Follows a `$ref` and, for an optional field (`oneOf: [X, null]`), takes `X`.
    fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let name = reference.strip_prefix("#/components/schemas/").expect("local reference");
            return resolve(document, &document["components"]["schemas"][name]);
        }
        if let Some(Value::Array(choices)) = schema.get("oneOf") {
            let present: Vec<&Value> = choices.iter().filter(|c| c["type"] != "null").collect();
            if let [only] = present.as_slice() {
                return resolve(document, only);
            }
        }
        schema
    }

    /// Ids of every length around the limits and every ASCII character, plus some that are not.
    fn id_samples() -> Vec<Value> {
        let mut samples: Vec<String> = (0..=0x7fu8).map(|b| format!("a{}b", b as char)).collect();
        samples.extend(["", "a", "alice@corp:1", "room-1.2_3~x", "ä", "a b", "a/b", "x\n"].map(String::from));
        samples.extend([63, 64, 65, 127, 128, 129, 255, 256, 257].map(|n| "i".repeat(n)));
        samples.into_iter().map(Value::from).collect()
    }

    /// The four signature headers as a client sends them; `name` takes `value` instead.
    fn headers_accepted(name: &str, value: &str) -> bool {
        let mut sent = [
            ("x-huddle-appid", "7".to_owned()),
            ("x-huddle-timestamp", "1700000000".to_owned()),
            ("x-huddle-nonce", "abcdefgh".to_owned()),
            ("x-huddle-signature", "0".repeat(64)),
        ];
        sent.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)).expect("a signature header").1 = value.to_owned();
        SignedHeaders::parse(|n| sent.iter().find(|(sent, _)| *sent == n).map(|(_, v)| v.as_str())).is_ok()
    }

    type Check = Box<dyn Fn(&Value) -> bool>;

    /// The server's check for a field or header called `name` in `place`, and values to try.
    fn validator(place: &str, name: &str) -> Option<(Check, Vec<Value>)> {
        let id =
            |kind: IdKind| -> Check { Box::new(move |v| v.as_str().is_some_and(|s| ids::validate(kind, s).is_ok())) };
        let ttl = |max: u64| -> Check {
            Box::new(move |v| serde_json::from_value::<TtlSeconds>(v.clone()).is_ok_and(|ttl| ttl.within(max).is_ok()))
        };
        let header = |name: &'static str| -> Check {
            Box::new(move |v| {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                headers_accepted(name, &text)
            })
        };
        let numbers = |list: &[f64]| list.iter().map(|n| json!(n)).collect::<Vec<_>>();
        let integers = |list: &[i64]| list.iter().map(|n| json!(n)).collect::<Vec<_>>();
        Some(match name {
            "userId" => (id(IdKind::User), id_samples()),
            "roomId" => (id(IdKind::Room), id_samples()),
            "streamId" => (id(IdKind::Stream), id_samples()),
            "ttlSeconds" => {
                let max =
                    if place.starts_with("GrantRequest") { grant::MAX_GRANT_TTL_SECS } else { token::MAX_TTL_SECS };
                let mut samples = integers(&[-1, 0, 1, 59, 60, 61, 3600, 86400, 86401, i64::MIN, i64::MAX]);
                samples.extend(numbers(&[30.0, 1.5, 1e20]));
                (ttl(max), samples)
            }
            "X-Huddle-AppId" => {
                (header(name_of(name)), integers(&[-1, 0, 1, 7, 2_147_483_648, 4_294_967_295, 4_294_967_296]))
            }
            "X-Huddle-Timestamp" => (header(name_of(name)), integers(&[-1, 0, 1_700_000_000, i64::MAX])),
            "X-Huddle-Nonce" | "X-Huddle-Signature" => {
                let mut samples: Vec<Value> = (0x20..=0x7fu8).map(|b| json!(format!("abcdefg{}", b as char))).collect();
                samples.extend([7, 8, 63, 64, 65].map(|n| json!("0".repeat(n))));
                samples.extend(["ABCDEF0123456789".repeat(4), "g".repeat(64), "abcdefgä".into()].map(Value::from));
                (header(name_of(name)), samples)
            }
            _ => return None,
        })
    }

    fn name_of(header: &str) -> &'static str {
        ["X-Huddle-AppId", "X-Huddle-Timestamp", "X-Huddle-Nonce", "X-Huddle-Signature"]
            .into_iter()
            .find(|known| *known == header)
            .expect("a signature header")
    }

    /// Every schema in the document with the name it goes by: `Component.property` for body
    /// fields, `METHOD path name` for parameters.
    fn named_schemas(document: &Value) -> Vec<(String, String, &Value)> {
        let mut found = Vec::new();
        for (component, schema) in document["components"]["schemas"].as_object().unwrap() {
            for (property, schema) in schema["properties"].as_object().into_iter().flatten() {
                found.push((format!("{component}.{property}"), property.clone(), schema));
            }
        }
        for (path, operations) in document["paths"].as_object().unwrap() {
            for (method, operation) in operations.as_object().unwrap() {
                for parameter in operation["parameters"].as_array().into_iter().flatten() {
                    let name = parameter["name"].as_str().unwrap().to_owned();
                    found.push((format!("{method} {path} {name}"), name, &parameter["schema"]));
                }
            }
        }
        found
    }

    #[test]
    fn the_document_states_what_the_server_enforces() {
        let document = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut checked = BTreeSet::new();
        for (place, name, schema) in named_schemas(&document) {
            // Dev mode's query (src/api/dev.rs) is documented apart from this file's work.
            if place.contains("/dev/token") {
                continue;
            }
            let schema = resolve(&document, schema);
            let (name, schema) = match name.as_str() {
                "streamIds" => {
                    let max_items = schema["maxItems"].as_u64();
                    assert_eq!(max_items, Some(token::MAX_STREAM_IDS as u64), "{place}: maxItems");
                    ("streamId".to_owned(), resolve(&document, &schema["items"]))
                }
                _ => (name, schema),
            };
            let Some((server_accepts, samples)) = validator(&place, &name) else { continue };
            for sample in samples {
                assert_eq!(
                    schema_accepts(schema, &sample),
                    server_accepts(&sample),
                    "{place} = {sample}: the schema and the server disagree; schema {schema}"
                );
            }
            checked.insert(place);
        }
        let mut expected: BTreeSet<String> = [
            "TokenRequest.userId",
            "TokenRequest.roomId",
            "TokenRequest.streamIds",
            "TokenRequest.ttlSeconds",
            "GrantRequest.userId",
            "GrantRequest.roomId",
            "GrantRequest.streamId",
            "GrantRequest.ttlSeconds",
            "post /relay/v1/publish/{streamId} streamId",
            "post /relay/v1/play/{streamId} streamId",
            "WebhookEvent.roomId",
            "WebhookEvent.userId",
            "WebhookEvent.streamId",
        ]
        .map(String::from)
        .into();
        for place in [
            "ListUsersRequest.roomId",
            "RoomRequest.roomId",
            "KickRequest.roomId",
            "CloseRequest.roomId",
            "MessageRequest.roomId",
            "CommandRequest.roomId",
            "ExtraInfoRequest.roomId",
            "MuteRequest.roomId",
            "MuteRequest.streamId",
            "RoomCounts.roomId",
            "RoomUser.userId",
            "RoomStream.streamId",
            "RoomStream.userId",
        ] {
            expected.insert(place.to_owned());
        }
        let admin_routes = [
            "list",
            "users",
            "streams",
            "user-counts",
            "kick",
            "close",
            "broadcast",
            "barrage",
            "command",
            "extra-info",
            "mute",
        ];
        let admin_routes = admin_routes.map(|route| format!("post /v1/rooms/{route}"));
        let other_routes =
            ["post /v1/tokens", "post /v1/grants", "get /v1/usage", "get /v1/app/webhook", "put /v1/app/webhook"];
        for route in other_routes.into_iter().chain(admin_routes.iter().map(String::as_str)) {
            for header in ["X-Huddle-AppId", "X-Huddle-Timestamp", "X-Huddle-Nonce", "X-Huddle-Signature"] {
                expected.insert(format!("{route} {header}"));
            }
        }
        assert_eq!(checked, expected);
    }

    #[test]
    fn the_checker_refuses_what_it_should() {
        let id = json!({"type": "string", "pattern": "^[a-z]+$", "maxLength": 3});
        assert!(schema_accepts(&id, &json!("abc")));
        assert!(!schema_accepts(&id, &json!("abcd")) && !schema_accepts(&id, &json!("aB")));
        assert!(!schema_accepts(&id, &json!(1)));
        let optional = json!({"components": {"schemas": {"Id": id}}});
        let field = json!({"oneOf": [{"$ref": "#/components/schemas/Id"}, {"type": "null"}]});
        assert_eq!(resolve(&optional, &field), &id);
        let ttl = json!({"type": ["integer", "null"], "minimum": 1, "maximum": 60});
        assert!(schema_accepts(&ttl, &json!(60)) && schema_accepts(&ttl, &json!(30.0)));
        assert!(
            !schema_accepts(&ttl, &json!(61))
                && !schema_accepts(&ttl, &json!(1.5))
                && !schema_accepts(&ttl, &json!("1"))
        );
    }
}
