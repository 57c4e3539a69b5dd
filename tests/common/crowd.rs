//! Many websocket sessions at once, cheaply: each [`Session`] is one task that logged in and then
//! records every event it receives with the time it arrived (websocket pings are answered by
//! tungstenite while reading). A [`Crowd`] spreads sessions over rooms and workers.
//!
//! Unlike [`super::ws::WsClient`], nothing here panics on a slow or failed server: logins and
//! requests have explicit timeouts and return errors, so failure drills can count them.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::{TestApp, login_data, mint};

/// One frame pushed by the server (an event or an unattributed error), with its arrival time.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    /// The event name (`roomUserUpdate`, …), or `error` for an error frame.
    pub event: String,
    pub data: Value,
}

impl Received {
    /// For `roomUserUpdate`: the update type and the user ids it names.
    pub fn user_update(&self) -> Option<(&str, Vec<&str>)> {
        if self.event != "roomUserUpdate" {
            return None;
        }
        let kind = self.data["updateType"].as_str()?;
        let users = self.data["userList"].as_array()?.iter().filter_map(|u| u["userID"].as_str()).collect();
        Some((kind, users))
    }

    /// For `IMRecvBroadcastMessage`: the message texts.
    pub fn broadcasts(&self) -> Vec<&str> {
        if self.event != "IMRecvBroadcastMessage" {
            return Vec::new();
        }
        self.data["messageList"]
            .as_array()
            .map(|l| l.iter().filter_map(|m| m["message"].as_str()).collect())
            .unwrap_or_default()
    }
}

/// How a session's connection ended.
#[derive(Debug, Clone)]
pub struct Closed {
    pub at: Instant,
    pub code: Option<u16>,
    pub reason: String,
}

#[derive(Default)]
pub struct Log {
    pub events: Vec<Received>,
    pub closed: Option<Closed>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    /// Could not open the websocket (or no `hello`).
    Connect(String),
    /// The login reply was an error.
    Refused { code: u64, message: String },
    /// No reply within the timeout; the client gave up and closed its socket.
    TimedOut,
    /// The server closed the connection before replying.
    Closed(String),
}

impl LoginError {
    pub fn code(&self) -> Option<u64> {
        match self {
            LoginError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl std::fmt::Display for LoginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoginError::Connect(err) => write!(f, "connect failed: {err}"),
            LoginError::Refused { code, message } => write!(f, "refused {code} ({message})"),
            LoginError::TimedOut => write!(f, "no reply (timed out)"),
            LoginError::Closed(why) => write!(f, "closed before the reply: {why}"),
        }
    }
}

enum Command {
    Request { kind: String, data: Value, reply: oneshot::Sender<Value> },
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A logged-in websocket session whose events are recorded by a task of its own.
pub struct Session {
    pub user_id: String,
    pub room: String,
    /// Index of the worker it is connected to (as the caller numbered them).
    pub worker: usize,
    /// The login reply's `data`.
    pub reply: Value,
    pub logged_in_at: Instant,
    log: Arc<Mutex<Log>>,
    commands: mpsc::UnboundedSender<Command>,
    task: tokio::task::JoinHandle<()>,
}

/// What to log in as.
#[derive(Debug, Clone)]
pub struct LoginSpec {
    pub base: String,
    pub worker: usize,
    pub room: String,
    pub user_id: String,
    pub user_update: bool,
}

async fn read_json(socket: &mut Socket) -> Result<Value, String> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(&text).map_err(|e| format!("bad JSON frame {text}: {e}"));
            }
            Some(Ok(Message::Close(frame))) => return Err(format!("close frame {frame:?}")),
            Some(Ok(_)) => continue,
            Some(Err(err)) => return Err(err.to_string()),
            None => return Err("connection ended".into()),
        }
    }
}

impl Session {
    /// Connects and logs in; gives up (closing the socket) after `timeout`.
    pub async fn login(app: &TestApp, spec: LoginSpec, timeout: Duration) -> Result<Session, LoginError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let url = format!("{}/ws", spec.base.replacen("http://", "ws://", 1));
        let connect = async {
            // Small buffers: a crowd is a thousand sockets whose frames are a few hundred bytes
            // (tungstenite's default read buffer alone is 128 KiB each).
            let config = WebSocketConfig::default().read_buffer_size(8 * 1024).write_buffer_size(0);
            let (mut socket, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
                .await
                .map_err(|e| LoginError::Connect(e.to_string()))?;
            let hello = read_json(&mut socket).await.map_err(LoginError::Connect)?;
            if hello["type"] != "hello" {
                return Err(LoginError::Connect(format!("first frame is not hello: {hello}")));
            }
            Ok(socket)
        };
        let mut socket = tokio::time::timeout_at(deadline, connect).await.map_err(|_| LoginError::TimedOut)??;
        let token = mint(app, &spec.user_id, Some(&spec.room), true);
        let request = json!({"id": 0, "type": "login", "data": login_data(app, &spec.room, &spec.user_id, &token, spec.user_update)});
        socket.send(Message::Text(request.to_string().into())).await.map_err(|e| LoginError::Closed(e.to_string()))?;
        let reply = loop {
            let frame = match tokio::time::timeout_at(deadline, read_json(&mut socket)).await {
                Err(_) => return Err(LoginError::TimedOut),
                Ok(Err(why)) => return Err(LoginError::Closed(why)),
                Ok(Ok(frame)) => frame,
            };
            if frame["type"] == "reply" && frame["id"] == 0 {
                break frame;
            }
        };
        if reply["ok"] != true {
            return Err(LoginError::Refused {
                code: reply["error"]["code"].as_u64().unwrap_or(0),
                message: reply["error"]["message"].as_str().unwrap_or_default().to_owned(),
            });
        }
        let log = Arc::new(Mutex::new(Log::default()));
        let (commands, receiver) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(socket, receiver, log.clone()));
        Ok(Session {
            user_id: spec.user_id,
            room: spec.room,
            worker: spec.worker,
            reply: reply["data"].clone(),
            logged_in_at: Instant::now(),
            log,
            commands,
            task,
        })
    }

    /// The recorded events and how the connection ended, if it did.
    pub fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Events received at or after `since`.
    pub fn events_since(&self, since: Instant) -> Vec<Received> {
        self.log().events.iter().filter(|e| e.at >= since).cloned().collect()
    }

    pub fn closed(&self) -> Option<Closed> {
        self.log().closed.clone()
    }

    pub fn is_open(&self) -> bool {
        self.log().closed.is_none()
    }

    /// When the first event at or after `since` matching `matches` arrived.
    pub fn first_since(&self, since: Instant, matches: impl Fn(&Received) -> bool) -> Option<Instant> {
        let log = self.log();
        let start = log.events.partition_point(|e| e.at < since);
        log.events[start..].iter().find(|e| matches(e)).map(|e| e.at)
    }

    /// How many events at or after `since` match.
    pub fn count_since(&self, since: Instant, matches: impl Fn(&Received) -> bool) -> usize {
        let log = self.log();
        let start = log.events.partition_point(|e| e.at < since);
        log.events[start..].iter().filter(|e| matches(e)).count()
    }

    /// Calls `visit` with every event at or after `since` (under the log's lock: keep it short).
    pub fn each_since(&self, since: Instant, mut visit: impl FnMut(&Received)) {
        let log = self.log();
        let start = log.events.partition_point(|e| e.at < since);
        log.events[start..].iter().for_each(&mut visit);
    }

    /// The user ids of the login reply's `userList` (empty without `userUpdate`).
    pub fn reply_users(&self) -> Vec<String> {
        user_ids(&self.reply["room"]["userList"])
    }

    /// Sends a request and waits for its whole reply frame.
    pub async fn request(&self, kind: &str, data: Value, timeout: Duration) -> Result<Value, String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Request { kind: kind.to_owned(), data, reply })
            .map_err(|_| format!("{kind}: the session's connection is gone"))?;
        match tokio::time::timeout(timeout, answer).await {
            Err(_) => Err(format!("{kind}: no reply within {timeout:?}")),
            Ok(Err(_)) => Err(format!("{kind}: connection closed before the reply")),
            Ok(Ok(reply)) => Ok(reply),
        }
    }

    /// Sends a request without waiting for its reply (which is dropped when it comes).
    pub fn fire(&self, kind: &str, data: Value) {
        let (reply, _) = oneshot::channel();
        let _ = self.commands.send(Command::Request { kind: kind.to_owned(), data, reply });
    }

    /// Logs out (the user leaves the room before the reply) and waits for the close.
    pub async fn logout(self, timeout: Duration) -> Result<(), String> {
        let reply = self.request("logout", json!({}), timeout).await?;
        if reply["ok"] != true {
            return Err(format!("logout failed: {reply}"));
        }
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Dropping the socket without a close handshake: a client that vanished.
        self.task.abort();
    }
}

/// The reader/writer task of a session.
async fn run(mut socket: Socket, mut commands: mpsc::UnboundedReceiver<Command>, log: Arc<Mutex<Log>>) {
    let mut next_id: u64 = 0;
    let mut waiting: std::collections::HashMap<u64, oneshot::Sender<Value>> = Default::default();
    let closed = |code: Option<u16>, reason: String| {
        log.lock().unwrap_or_else(|p| p.into_inner()).closed = Some(Closed { at: Instant::now(), code, reason });
    };
    loop {
        tokio::select! {
            frame = socket.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let at = Instant::now();
                    let Ok(frame) = serde_json::from_str::<Value>(&text) else { continue };
                    match frame["type"].as_str() {
                        Some("reply") => {
                            if let Some(sender) = frame["id"].as_u64().and_then(|id| waiting.remove(&id)) {
                                let _ = sender.send(frame);
                            }
                        }
                        Some("event") => {
                            let event = frame["event"].as_str().unwrap_or_default().to_owned();
                            let data = frame["data"].clone();
                            log.lock().unwrap_or_else(|p| p.into_inner()).events.push(Received { at, event, data });
                        }
                        _ => {
                            let data = frame["error"].clone();
                            let received = Received { at, event: "error".into(), data };
                            log.lock().unwrap_or_else(|p| p.into_inner()).events.push(received);
                        }
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.as_ref().map(|f| u16::from(f.code));
                    closed(code, frame.map(|f| f.reason.to_string()).unwrap_or_default());
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => {
                    closed(None, err.to_string());
                    return;
                }
                None => {
                    closed(None, "connection ended".into());
                    return;
                }
            },
            command = commands.recv() => match command {
                Some(Command::Request { kind, data, reply }) => {
                    next_id += 1;
                    waiting.insert(next_id, reply);
                    let frame = json!({"id": next_id, "type": kind, "data": data}).to_string();
                    if let Err(err) = socket.send(Message::Text(frame.into())).await {
                        closed(None, format!("send failed: {err}"));
                        return;
                    }
                }
                None => return,
            },
        }
    }
}

pub fn user_ids(list: &Value) -> Vec<String> {
    let mut ids: Vec<String> = list
        .as_array()
        .map(|l| l.iter().filter_map(|u| u["userID"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

/// How many sessions, where.
#[derive(Debug, Clone)]
pub struct CrowdSpec {
    /// Prefix of every user id (keeps crowds of one test apart).
    pub prefix: String,
    pub rooms: Vec<String>,
    /// Sessions per worker, spread round-robin over the rooms.
    pub per_worker: usize,
    pub user_update: bool,
    /// Logins in flight at once.
    pub concurrency: usize,
    pub login_timeout: Duration,
}

/// Sessions spread over rooms and workers; every room has members on every worker.
pub struct Crowd {
    pub sessions: Vec<Session>,
    /// How long logging everyone in took.
    pub took: Duration,
}

impl Crowd {
    /// Logs everyone in on `bases` (worker `i` is `bases[i]`); panics with the failures if any
    /// login fails (the drills start from a healthy cluster).
    pub async fn join(app: &TestApp, bases: &[(usize, String)], spec: &CrowdSpec) -> Crowd {
        let started = Instant::now();
        let mut logins = Vec::new();
        for index in 0..spec.per_worker {
            for (worker, base) in bases {
                let room = &spec.rooms[index % spec.rooms.len()];
                logins.push(LoginSpec {
                    base: base.clone(),
                    worker: *worker,
                    room: room.clone(),
                    user_id: format!("{}-w{worker}-{index}", spec.prefix),
                    user_update: spec.user_update,
                });
            }
        }
        let total = logins.len();
        let results: Vec<(LoginSpec, Result<Session, LoginError>)> = futures_util::stream::iter(logins)
            .map(|login| async move {
                let result = Session::login(app, login.clone(), spec.login_timeout).await;
                (login, result)
            })
            .buffer_unordered(spec.concurrency.max(1))
            .collect()
            .await;
        let mut sessions = Vec::with_capacity(total);
        let mut failures = Vec::new();
        for (login, result) in results {
            match result {
                Ok(session) => sessions.push(session),
                Err(err) => {
                    failures.push(format!("{} in {} on worker {}: {err}", login.user_id, login.room, login.worker))
                }
            }
        }
        assert!(
            failures.is_empty(),
            "crowd: {} of {total} logins failed on a healthy cluster, e.g. {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
        Crowd { sessions, took: started.elapsed() }
    }

    pub fn in_room<'a>(&'a self, room: &'a str) -> impl Iterator<Item = &'a Session> + 'a {
        self.sessions.iter().filter(move |s| s.room == room)
    }

    pub fn on_worker(&self, worker: usize) -> impl Iterator<Item = &Session> + '_ {
        self.sessions.iter().filter(move |s| s.worker == worker)
    }

    /// Sessions whose connection ended, with how.
    pub fn closed(&self) -> Vec<(&Session, Closed)> {
        self.sessions.iter().filter_map(|s| s.closed().map(|c| (s, c))).collect()
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }
}
