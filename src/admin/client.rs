//! `huddle rooms …`: the operator's way to the admin API. The CLI does not touch the rooms
//! itself: it signs a request with the app's secret (read from the store, like `huddle token`)
//! exactly as a business server would, sends it to a running server, and prints the answer as
//! a table or, with `--json`, as the API's JSON. So the CLI runs the same code as the REST API,
//! on whichever worker it reaches, and works against any backend (memory or Redis).

use serde_json::{Value, json};

use crate::auth::{signature, unix_now};
use crate::config::{RoomsCommand, RoomsTarget};
use crate::store::Store;

/// A signed caller of one app's admin API.
pub struct AdminClient {
    http: reqwest::Client,
    server: String,
    app_id: u32,
    secret: String,
}

impl AdminClient {
    pub fn new(server: &str, app_id: u32, secret: String) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(AdminClient { http, server: server.trim_end_matches('/').to_owned(), app_id, secret })
    }

    /// Signs and sends `body` to `POST path`; the JSON answer, or the server's
    /// `{code, message}` as the error text.
    pub async fn call(&self, path: &str, body: &Value) -> Result<Value, String> {
        let body = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        let timestamp = unix_now();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let sig = signature::sign(self.secret.as_bytes(), self.app_id, timestamp, &nonce, "POST", path, &body);
        let response = self
            .http
            .post(format!("{}{path}", self.server))
            .header("Content-Type", "application/json")
            .header("X-Huddle-AppId", self.app_id.to_string())
            .header("X-Huddle-Timestamp", timestamp.to_string())
            .header("X-Huddle-Nonce", nonce)
            .header("X-Huddle-Signature", sig)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("cannot reach the server at {}: {e}", self.server))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| format!("reading the server's answer: {e}"))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|_| format!("the server answered {status} with a body that is not JSON: {text:.200}"))?;
        if status.is_success() {
            return Ok(value);
        }
        match (value.get("code"), value.get("message")) {
            (Some(code), Some(message)) => Err(format!("{code}: {}", message.as_str().unwrap_or_default())),
            _ => Err(format!("the server answered {status}: {value}")),
        }
    }
}

/// Runs a `huddle rooms` command; the secret comes from the store named by the target.
pub async fn run(command: RoomsCommand) -> Result<(), String> {
    let (target, path, body) = request_of(command);
    let store = Store::open(&target.store.url(&crate::config::process_env)).await.map_err(|e| e.to_string())?;
    let app = store
        .find_app(target.app_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no app with id {}", target.app_id))?;
    let client = AdminClient::new(&target.server, app.app_id, app.server_secret)?;
    let answer = client.call(path, &body).await?;
    if target.json {
        println!("{answer}");
    } else {
        print!("{}", table(path, &answer));
    }
    Ok(())
}

/// The route and body a command sends (the CLI's flags are the API's fields).
fn request_of(command: RoomsCommand) -> (RoomsTarget, &'static str, Value) {
    let compact = |mut value: Value| {
        if let Some(map) = value.as_object_mut() {
            map.retain(|_, v| !v.is_null());
        }
        value
    };
    match command {
        RoomsCommand::List(a) => (a.target, "/v1/rooms/list", compact(json!({"cursor": a.cursor, "limit": a.limit}))),
        RoomsCommand::Users(a) => {
            (a.target, "/v1/rooms/users", compact(json!({"roomId": a.room_id, "cursor": a.cursor, "limit": a.limit})))
        }
        RoomsCommand::Streams(a) => (a.target, "/v1/rooms/streams", json!({"roomId": a.room_id})),
        RoomsCommand::Kick(a) => (
            a.target,
            "/v1/rooms/kick",
            compact(json!({"roomId": a.room_id, "userIds": a.user_ids, "reason": a.reason,
                           "banSeconds": a.ban_seconds})),
        ),
        RoomsCommand::Close(a) => (
            a.target,
            "/v1/rooms/close",
            compact(json!({"roomId": a.room_id, "reason": a.reason, "banSeconds": a.ban_seconds})),
        ),
        RoomsCommand::Mute(a) => (
            a.target,
            "/v1/rooms/mute",
            compact(json!({"roomId": a.room_id, "streamId": a.stream_id,
                           "audio": a.audio.map(|s| s.muted()), "video": a.video.map(|s| s.muted())})),
        ),
    }
}

/// The answer as an aligned text table (plus the next cursor, if any).
fn table(path: &str, answer: &Value) -> String {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let rows_of = |key: &str, columns: &[&str]| -> Vec<Vec<String>> {
        answer
            .get(key)
            .and_then(Value::as_array)
            .map(|items| items.iter().map(|item| columns.iter().map(|c| text(&item[*c])).collect()).collect())
            .unwrap_or_default()
    };
    let (headers, rows): (&[&str], Vec<Vec<String>>) = match path {
        "/v1/rooms/list" => {
            let columns = ["roomId", "userCount", "streamCount"];
            (&["ROOM", "USERS", "STREAMS"], rows_of("rooms", &columns))
        }
        "/v1/rooms/users" => {
            let columns = ["userId", "userName", "joinedAt"];
            (&["USER", "NAME", "JOINED_AT"], rows_of("users", &columns))
        }
        "/v1/rooms/streams" => {
            let columns = ["streamId", "userId", "audioMuted", "videoMuted", "relayUrl", "extraInfo"];
            (&["STREAM", "USER", "AUDIO_MUTED", "VIDEO_MUTED", "RELAY", "EXTRA_INFO"], rows_of("streams", &columns))
        }
        "/v1/rooms/mute" => {
            let row = ["streamId", "userId", "audioMuted", "videoMuted"].map(|c| text(&answer[c])).to_vec();
            (&["STREAM", "USER", "AUDIO_MUTED", "VIDEO_MUTED"], vec![row])
        }
        "/v1/rooms/kick" => {
            let mut rows: Vec<Vec<String>> = Vec::new();
            for (key, outcome) in [("kicked", "kicked"), ("notInRoom", "not in room")] {
                for user in answer.get(key).and_then(Value::as_array).into_iter().flatten() {
                    rows.push(vec![text(user), outcome.to_owned()]);
                }
            }
            (&["USER", "RESULT"], rows)
        }
        _ => {
            let row = vec![text(&answer["usersRemoved"]), text(&answer["streamsRemoved"])];
            (&["USERS_REMOVED", "STREAMS_REMOVED"], vec![row])
        }
    };
    let mut out = format_table(headers, &rows);
    if let Some(cursor) = answer.get("nextCursor").and_then(Value::as_str) {
        out.push_str(&format!("next cursor: {cursor}\n"));
    }
    out
}

fn format_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_show_the_cursor() {
        let answer = json!({"rooms": [{"roomId": "a", "userCount": 2, "streamCount": 1},
                                      {"roomId": "longer-room", "userCount": 10, "streamCount": 0}],
                            "nextCursor": "longer-room"});
        assert_eq!(
            table("/v1/rooms/list", &answer),
            "ROOM         USERS  STREAMS\na            2      1\nlonger-room  10     0\nnext cursor: longer-room\n"
        );
        let kicked = json!({"kicked": ["bob"], "notInRoom": ["eve"]});
        assert_eq!(table("/v1/rooms/kick", &kicked), "USER  RESULT\nbob   kicked\neve   not in room\n");
    }
}
