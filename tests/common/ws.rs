//! A websocket client speaking Huddle's protocol, for tests.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const WAIT: Duration = Duration::from_secs(10);

pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Events received while waiting for something else, oldest first.
    pending: VecDeque<Value>,
    next_id: u64,
    pub hello: Value,
    pub closed: Option<Option<CloseFrame>>,
}

impl WsClient {
    pub async fn connect(base: &str) -> WsClient {
        WsClient::connect_path(base, "/ws").await
    }

    pub async fn connect_path(base: &str, path: &str) -> WsClient {
        let url = format!("{}{}", base.replacen("http://", "ws://", 1), path);
        let (socket, _) = tokio_tungstenite::connect_async(url).await.expect("websocket connects");
        let mut client = WsClient { socket, pending: VecDeque::new(), next_id: 0, hello: Value::Null, closed: None };
        client.hello = client.read().await.expect("hello frame");
        assert_eq!(client.hello["type"], "hello");
        client
    }

    /// Connects with extra headers on the upgrade request (`Origin`, `Host`, ...).
    pub async fn connect_with(base: &str, headers: &[(&str, &str)]) -> WsClient {
        let socket = upgrade(base, headers).await.expect("websocket connects");
        let mut client = WsClient { socket, pending: VecDeque::new(), next_id: 0, hello: Value::Null, closed: None };
        client.hello = client.read().await.expect("hello frame");
        assert_eq!(client.hello["type"], "hello");
        client
    }

    /// Next JSON frame (pings are answered by the library), `None` once closed.
    async fn read(&mut self) -> Option<Value> {
        // One deadline for the whole wait: the server's pings must not keep extending it.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => panic!("no frame within {WAIT:?}"),
                Ok(None) | Ok(Some(Err(_))) => {
                    self.closed.get_or_insert(None);
                    return None;
                }
                Ok(Some(Ok(Message::Text(text)))) => return Some(serde_json::from_str(&text).expect("JSON frame")),
                Ok(Some(Ok(Message::Close(frame)))) => {
                    self.closed = Some(frame);
                    return None;
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.socket.send(message).await.expect("send");
    }

    pub async fn send_text(&mut self, text: &str) {
        self.send_raw(Message::Text(text.into())).await;
    }

    /// Sends a request and returns its reply frame; events seen meanwhile are kept.
    pub async fn request(&mut self, kind: &str, data: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send_text(&json!({"id": id, "type": kind, "data": data}).to_string()).await;
        loop {
            let frame = self.read().await.unwrap_or_else(|| panic!("closed before the reply to {kind}"));
            if frame["type"] == "reply" && frame["id"] == id {
                return frame;
            }
            self.pending.push_back(frame);
        }
    }

    /// Sends a request that must succeed; returns its `data`.
    pub async fn ok(&mut self, kind: &str, data: Value) -> Value {
        let reply = self.request(kind, data).await;
        assert_eq!(reply["ok"], true, "{kind} failed: {reply}");
        reply["data"].clone()
    }

    /// Sends a request that must fail; returns its error code.
    pub async fn fails(&mut self, kind: &str, data: Value) -> u64 {
        let reply = self.request(kind, data).await;
        assert_eq!(reply["ok"], false, "{kind} succeeded: {reply}");
        reply["error"]["code"].as_u64().expect("error code")
    }

    /// The next pushed frame (event or error), in order.
    pub async fn next_frame(&mut self) -> Value {
        if let Some(frame) = self.pending.pop_front() {
            return frame;
        }
        match self.read().await {
            Some(frame) => frame,
            None => panic!("closed ({:?}) while waiting for a frame", self.closed),
        }
    }

    /// The next event, skipping online-count updates (which interleave with everything).
    pub async fn next_event(&mut self) -> Value {
        loop {
            let frame = self.next_frame().await;
            if frame["event"] != "roomOnlineUserCountUpdate" {
                return frame;
            }
        }
    }

    /// The code of the next unattributed `error` frame, skipping events.
    pub async fn next_error(&mut self) -> u64 {
        loop {
            let frame = self.next_frame().await;
            if frame["type"] == "error" {
                return frame["error"]["code"].as_u64().expect("code");
            }
        }
    }

    /// Waits for the named event, dropping others.
    pub async fn event(&mut self, name: &str) -> Value {
        loop {
            let frame = self.next_frame().await;
            if frame["event"] == name {
                return frame["data"].clone();
            }
        }
    }

    /// Asserts that no event other than count updates arrives for `quiet`.
    pub async fn quiet(&mut self, quiet: Duration) {
        self.pending.retain(|f| f["event"] != "roomOnlineUserCountUpdate");
        assert!(self.pending.is_empty(), "expected quiet, have {:?}", self.pending);
        let deadline = tokio::time::Instant::now() + quiet;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Text(text)))) => {
                    let frame: Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(frame["event"], "roomOnlineUserCountUpdate", "expected quiet, got {frame}");
                }
                Ok(Some(Ok(_))) => {}
                Ok(other) => panic!("expected quiet, got {other:?}"),
            }
        }
    }

    /// Reads until the server closes; returns the close code.
    pub async fn close_code(&mut self) -> Option<u16> {
        while self.closed.is_none() {
            match self.read().await {
                Some(frame) => self.pending.push_back(frame),
                None => break,
            }
        }
        self.closed.clone().flatten().map(|f| u16::from(f.code))
    }

    /// Drops the TCP connection without a close handshake (a network failure).
    pub fn cut(self) {
        drop(self);
    }
}

/// Opens `/ws` with extra upgrade headers; a refused upgrade is `Err(Error::Http(response))`.
pub async fn upgrade(
    base: &str,
    headers: &[(&str, &str)],
) -> Result<WebSocketStream<MaybeTlsStream<TcpStream>>, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
    let url = format!("{}/ws", base.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().expect("request");
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("header name");
        request.headers_mut().insert(name, HeaderValue::from_str(value).expect("header value"));
    }
    tokio_tungstenite::connect_async(request).await.map(|(socket, _)| socket)
}
