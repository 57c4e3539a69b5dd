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

    /// Sends a websocket ping and waits for its pong; returns the round trip. Frames that
    /// arrive meanwhile are kept.
    pub async fn ping_pong(&mut self) -> Duration {
        let started = tokio::time::Instant::now();
        self.send_raw(Message::Ping(b"rtt".to_vec().into())).await;
        loop {
            match tokio::time::timeout_at(started + WAIT, self.socket.next()).await {
                Err(_) => panic!("no pong within {WAIT:?}"),
                Ok(Some(Ok(Message::Pong(payload)))) if payload.as_ref() == b"rtt" => return started.elapsed(),
                Ok(Some(Ok(Message::Text(text)))) => {
                    self.pending.push_back(serde_json::from_str(&text).expect("JSON frame"))
                }
                Ok(Some(Ok(Message::Close(frame)))) => panic!("closed ({frame:?}) while waiting for a pong"),
                Ok(Some(Ok(_))) => {}
                Ok(other) => panic!("connection ended ({other:?}) while waiting for a pong"),
            }
        }
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

/// What ended a raw connection, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// A close frame with this status code.
    Code(u16),
    /// A close frame without a status code.
    NoCode,
    /// The TCP connection ended without a close frame.
    NoCloseFrame,
}

/// A websocket client that writes frames byte by byte, so that tests can send what a
/// well-behaved library never would: unmasked frames, bad opcodes, broken fragmentation.
pub struct RawWs {
    stream: TcpStream,
    buffer: Vec<u8>,
    pub hello: Value,
}

pub mod opcode {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}

impl RawWs {
    pub async fn connect(base: &str) -> RawWs {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = base.trim_start_matches("http://").to_owned();
        let mut stream = TcpStream::connect(&host).await.expect("TCP connect");
        let request = format!(
            "GET /ws?v=1 HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("write upgrade");
        let mut buffer = Vec::new();
        let header_end = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(WAIT, stream.read(&mut chunk)).await.expect("upgrade response").expect("read");
            assert!(n > 0, "closed during the upgrade");
            buffer.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buffer[..header_end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
        buffer.drain(..header_end);
        let mut client = RawWs { stream, buffer, hello: Value::Null };
        client.hello = match client.read_frame().await {
            Some((opcode::TEXT, payload)) => serde_json::from_slice(&payload).expect("JSON hello"),
            other => panic!("expected hello, got {other:?}"),
        };
        client
    }

    /// Writes one frame: `first` is the first header byte (FIN, RSV bits, opcode).
    pub async fn send_header_byte(&mut self, first: u8, masked: bool, payload: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let mut frame = vec![first];
        let mask_bit = if masked { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => frame.push(mask_bit | n as u8),
            n if n <= u16::MAX as usize => {
                frame.push(mask_bit | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(mask_bit | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if masked {
            let key = [0x12u8, 0x34, 0x56, 0x78];
            frame.extend_from_slice(&key);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            frame.extend_from_slice(payload);
        }
        // The server may have closed already; what it answered is read afterwards.
        let _ = self.stream.write_all(&frame).await;
    }

    /// Writes bytes as they are.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let _ = self.stream.write_all(bytes).await;
    }

    /// Writes one masked frame, as a client must.
    pub async fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        self.send_header_byte(if fin { 0x80 } else { 0 } | opcode, true, payload).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.send_frame(true, opcode::TEXT, text.as_bytes()).await;
    }

    /// The next frame from the server as (opcode, payload); `None` at EOF.
    pub async fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        use tokio::io::AsyncReadExt;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some((frame, used)) = parse_server_frame(&self.buffer) {
                self.buffer.drain(..used);
                return Some(frame);
            }
            let mut chunk = [0u8; 16384];
            let read = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .unwrap_or_else(|_| panic!("no frame within {WAIT:?}"));
            match read {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Next JSON text frame, answering pings; `Err` with how the connection ended.
    pub async fn next_json(&mut self) -> Result<Value, Ending> {
        loop {
            match self.read_frame().await {
                None => return Err(Ending::NoCloseFrame),
                Some((opcode::TEXT, payload)) => return Ok(serde_json::from_slice(&payload).expect("JSON frame")),
                Some((opcode::CLOSE, payload)) if payload.len() >= 2 => {
                    return Err(Ending::Code(u16::from_be_bytes([payload[0], payload[1]])));
                }
                Some((opcode::CLOSE, _)) => return Err(Ending::NoCode),
                Some((opcode::PING, payload)) => self.send_frame(true, opcode::PONG, &payload).await,
                Some(_) => {}
            }
        }
    }

    /// Sends a request and returns its reply frame, skipping anything else.
    pub async fn request(&mut self, id: u64, kind: &str, data: Value) -> Value {
        self.send_text(&json!({"id": id, "type": kind, "data": data}).to_string()).await;
        loop {
            let frame = self.next_json().await.unwrap_or_else(|e| panic!("ended ({e:?}) before the reply to {kind}"));
            if frame["type"] == "reply" && frame["id"] == id {
                return frame;
            }
        }
    }

    /// Reads until the connection ends; returns the `error` frames' codes seen and the ending.
    pub async fn ending(&mut self) -> (Vec<u64>, Ending) {
        let mut errors = Vec::new();
        loop {
            match self.next_json().await {
                Ok(frame) if frame["type"] == "error" => errors.push(frame["error"]["code"].as_u64().expect("code")),
                Ok(_) => {}
                Err(ending) => return (errors, ending),
            }
        }
    }
}

/// Parses one unmasked server frame from the front of `buffer`: ((opcode, payload), bytes used).
fn parse_server_frame(buffer: &[u8]) -> Option<((u8, Vec<u8>), usize)> {
    if buffer.len() < 2 {
        return None;
    }
    let opcode = buffer[0] & 0x0f;
    let (len, start) = match buffer[1] & 0x7f {
        126 if buffer.len() >= 4 => (u16::from_be_bytes([buffer[2], buffer[3]]) as usize, 4),
        127 if buffer.len() >= 10 => (u64::from_be_bytes(buffer[2..10].try_into().ok()?) as usize, 10),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    if buffer.len() < start + len {
        return None;
    }
    Some(((opcode, buffer[start..start + len].to_vec()), start + len))
}
