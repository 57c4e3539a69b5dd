//! Incoming websocket frames, turned into whole messages, with everything that can go wrong
//! sorted by how the connection must end (docs/PROTOCOL.md §2 "Websocket frames" and §11).
//!
//! [`FrameReader`] cuts the raw request body into frames with actix-http's frame parser (masking,
//! reserved bits, opcodes, control frame sizes). Unlike actix-ws's `MessageStream`, it refuses a
//! frame whose header announces more than the cap as soon as the header is in, instead of
//! buffering whatever the client sends until the announced length has arrived.
//! [`Reassembly`] joins fragmented messages under the same cap for the whole message and checks
//! that text is UTF-8. Both are transport-free, so they are tested with plain byte streams.
//!
//! ```
//! use actix_web::web::Bytes;
//! use huddle::signaling::frames::{Frame, Inbound, OpCode, Reassembly};
//!
//! let mut reassembly = Reassembly::new(64 * 1024);
//! let first = Frame { fin: false, opcode: OpCode::Text, payload: Bytes::from_static(b"{\"id\":1,") };
//! assert_eq!(reassembly.push(first), Ok(None));
//! let last = Frame { fin: true, opcode: OpCode::Continue, payload: Bytes::from_static(b"\"type\":\"ping\"}") };
//! assert_eq!(reassembly.push(last), Ok(Some(Inbound::Text("{\"id\":1,\"type\":\"ping\"}".into()))));
//! ```

use std::fmt::Display;

pub use actix_http::ws::OpCode;
use actix_http::ws::{Parser, ProtocolError};
use actix_web::web::{Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::{Stream, StreamExt};

/// One websocket frame from the client, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: OpCode,
    pub payload: Bytes,
}

/// A whole message or a control frame from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Text(ByteString),
    Binary(Bytes),
    Ping(Bytes),
    Pong,
    /// The client's close frame.
    Close,
}

/// Why the frames cannot be read on, by how the connection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    /// One frame, or the fragments of one message together, over the cap: error `5005`, close
    /// `1009`, the session ends.
    TooLarge,
    /// A text message that is not UTF-8: close `1007`, the session ends.
    InvalidUtf8,
    /// Any other websocket protocol violation (unmasked frame, reserved opcode or bits, broken
    /// fragmentation, oversized or fragmented control frame, bad close frame): close `1002`, the
    /// session ends.
    Protocol(String),
    /// The connection failed underneath: the client is not at fault, so its session is parked
    /// as for any dropped connection.
    Transport(String),
}

/// Reads frames from the raw request body of the upgraded connection.
pub struct FrameReader<S> {
    body: S,
    buffer: BytesMut,
    max_bytes: usize,
    ended: bool,
}

impl<S, E> FrameReader<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    /// `max_bytes` caps one frame (and, in [`Reassembly`], one message).
    pub fn new(body: S, max_bytes: usize) -> Self {
        FrameReader { body, buffer: BytesMut::new(), max_bytes, ended: false }
    }

    /// The next frame; `None` once the client's side of the connection has ended. Cancel-safe:
    /// bytes are only taken from the body in the poll that returns them.
    pub async fn next(&mut self) -> Option<Result<Frame, Broken>> {
        loop {
            match Parser::parse(&mut self.buffer, true, self.max_bytes) {
                Ok(Some((fin, opcode, payload))) => {
                    let payload = payload.map(BytesMut::freeze).unwrap_or_default();
                    return Some(Ok(Frame { fin, opcode, payload }));
                }
                Ok(None) if announced_length(&self.buffer).is_some_and(|n| n > self.max_bytes as u64) => {
                    return Some(Err(Broken::TooLarge));
                }
                Ok(None) => {}
                Err(ProtocolError::Overflow) => return Some(Err(Broken::TooLarge)),
                Err(other) => return Some(Err(Broken::Protocol(other.to_string()))),
            }
            if self.ended {
                return None;
            }
            match self.body.next().await {
                Some(Ok(bytes)) => self.buffer.extend_from_slice(&bytes),
                Some(Err(error)) => {
                    self.ended = true;
                    return Some(Err(Broken::Transport(error.to_string())));
                }
                None => self.ended = true,
            }
        }
    }
}

/// The payload length the frame header at the start of `buffer` announces, once it is in.
fn announced_length(buffer: &[u8]) -> Option<u64> {
    match *buffer.get(1)? & 0x7f {
        126 => Some(u16::from_be_bytes([*buffer.get(2)?, *buffer.get(3)?]).into()),
        127 => Some(u64::from_be_bytes(buffer.get(2..10)?.try_into().ok()?)),
        length => Some(length.into()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Binary,
}

/// Joins fragmented messages; holds the message being reassembled, if any.
#[derive(Debug)]
pub struct Reassembly {
    max_bytes: usize,
    partial: Option<(Kind, BytesMut)>,
}

impl Reassembly {
    /// `max_bytes` caps a whole message, however it is fragmented.
    pub fn new(max_bytes: usize) -> Self {
        Reassembly { max_bytes, partial: None }
    }

    /// Takes the next frame: `Ok(None)` while a message is incomplete.
    pub fn push(&mut self, frame: Frame) -> Result<Option<Inbound>, Broken> {
        let Frame { fin, opcode, payload } = frame;
        match opcode {
            // Control frames may come between the fragments of a message, never fragmented.
            OpCode::Ping | OpCode::Pong | OpCode::Close if !fin => {
                Err(Broken::Protocol(format!("a fragmented {opcode} frame")))
            }
            OpCode::Ping => Ok(Some(Inbound::Ping(payload))),
            OpCode::Pong => Ok(Some(Inbound::Pong)),
            OpCode::Close => match Parser::try_parse_close_payload(&payload) {
                Ok(_) => Ok(Some(Inbound::Close)),
                Err(_) => Err(Broken::Protocol("a close frame with an invalid status code or reason".into())),
            },
            OpCode::Text | OpCode::Binary if self.partial.is_some() => {
                Err(Broken::Protocol("a new message started inside a fragmented one".into()))
            }
            OpCode::Text | OpCode::Binary => {
                let kind = if opcode == OpCode::Text { Kind::Text } else { Kind::Binary };
                if fin {
                    return whole(kind, payload).map(Some);
                }
                self.partial = Some((kind, BytesMut::from(payload)));
                Ok(None)
            }
            OpCode::Continue => {
                let Some((_, partial)) = self.partial.as_mut() else {
                    return Err(Broken::Protocol("a continuation frame with no message to continue".into()));
                };
                if partial.len() + payload.len() > self.max_bytes {
                    return Err(Broken::TooLarge);
                }
                partial.extend_from_slice(&payload);
                match self.partial.take() {
                    Some((kind, bytes)) if fin => whole(kind, bytes.freeze()).map(Some),
                    unfinished => {
                        self.partial = unfinished;
                        Ok(None)
                    }
                }
            }
            OpCode::Bad => Err(Broken::Protocol("a reserved opcode".into())),
        }
    }
}

fn whole(kind: Kind, bytes: Bytes) -> Result<Inbound, Broken> {
    match kind {
        Kind::Binary => Ok(Inbound::Binary(bytes)),
        Kind::Text => ByteString::try_from(bytes).map(Inbound::Text).map_err(|_| Broken::InvalidUtf8),
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use futures_util::stream;

    use super::*;

    fn frame(fin: bool, opcode: OpCode, payload: &'static [u8]) -> Frame {
        Frame { fin, opcode, payload: Bytes::from_static(payload) }
    }

    /// A client frame on the wire: masked, with the length in the shortest form.
    fn wire(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut bytes = vec![first];
        match payload.len() {
            n if n < 126 => bytes.push(0x80 | n as u8),
            n if n <= 0xffff => {
                bytes.push(0x80 | 126);
                bytes.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                bytes.push(0x80 | 127);
                bytes.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let key = [1u8, 2, 3, 4];
        bytes.extend_from_slice(&key);
        bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        bytes
    }

    async fn read_all(chunks: Vec<Vec<u8>>, max: usize) -> Vec<Result<Frame, Broken>> {
        let body = stream::iter(chunks.into_iter().map(|c| Ok::<_, Infallible>(Bytes::from(c))));
        let mut reader = FrameReader::new(body, max);
        let mut frames = Vec::new();
        while let Some(frame) = reader.next().await {
            let failed = frame.is_err();
            frames.push(frame);
            if failed {
                break;
            }
        }
        frames
    }

    #[tokio::test]
    async fn frames_are_read_across_chunks() {
        let mut bytes = wire(0x81, b"hello");
        bytes.extend(wire(0x89, b"p"));
        let (a, b) = bytes.split_at(3);
        let frames = read_all(vec![a.to_vec(), b.to_vec()], 16).await;
        assert_eq!(frames, vec![Ok(frame(true, OpCode::Text, b"hello")), Ok(frame(true, OpCode::Ping, b"p"))]);
    }

    #[tokio::test]
    async fn an_oversized_frame_is_refused_from_its_header_alone() {
        let mut header = vec![0x81, 0x80 | 127];
        header.extend_from_slice(&(1u64 << 40).to_be_bytes());
        // The body never sends the announced bytes: the reader must not wait for them.
        let body = stream::iter([Ok::<_, Infallible>(Bytes::from(header))]).chain(stream::pending());
        let mut reader = FrameReader::new(body, 16);
        assert_eq!(reader.next().await, Some(Err(Broken::TooLarge)));
        let medium = wire(0x81, &[b'x'; 17]);
        let frames = read_all(vec![medium[..4].to_vec()], 16).await;
        assert_eq!(frames, vec![Err(Broken::TooLarge)]);
    }

    #[tokio::test]
    async fn violations_and_transport_failures_are_told_apart() {
        let unmasked = vec![0x81, 0x01, b'x'];
        assert!(matches!(read_all(vec![unmasked], 16).await[..], [Err(Broken::Protocol(_))]));
        let reserved_bits = wire(0x81 | 0x40, b"x");
        assert!(matches!(read_all(vec![reserved_bits], 16).await[..], [Err(Broken::Protocol(_))]));
        let reserved_opcode = wire(0x83, b"x");
        assert!(matches!(read_all(vec![reserved_opcode], 16).await[..], [Err(Broken::Protocol(_))]));
        let long_ping = wire(0x89, &[b'p'; 126]);
        assert!(matches!(read_all(vec![long_ping], 256).await[..], [Err(Broken::Protocol(_))]));
        let body = stream::iter([Ok(Bytes::from(wire(0x81, b"hi"))), Err("connection reset")]);
        let mut reader = FrameReader::new(body, 16);
        assert_eq!(reader.next().await, Some(Ok(frame(true, OpCode::Text, b"hi"))));
        assert_eq!(reader.next().await, Some(Err(Broken::Transport("connection reset".into()))));
        // The end of the body ends the frames, even inside a frame.
        assert_eq!(read_all(vec![wire(0x81, b"hi")[..3].to_vec()], 16).await, vec![]);
    }

    #[test]
    fn whole_messages_and_control_frames_pass_through() {
        let mut r = Reassembly::new(16);
        assert_eq!(r.push(frame(true, OpCode::Text, b"hi")), Ok(Some(Inbound::Text("hi".into()))));
        assert_eq!(r.push(frame(true, OpCode::Binary, &[1])), Ok(Some(Inbound::Binary(Bytes::from_static(&[1])))));
        assert_eq!(r.push(frame(true, OpCode::Ping, b"p")), Ok(Some(Inbound::Ping(Bytes::from_static(b"p")))));
        assert_eq!(r.push(frame(true, OpCode::Pong, b"")), Ok(Some(Inbound::Pong)));
        assert_eq!(r.push(frame(true, OpCode::Close, &[0x03, 0xe8])), Ok(Some(Inbound::Close)));
        assert_eq!(r.push(frame(true, OpCode::Close, b"")), Ok(Some(Inbound::Close)));
    }

    #[test]
    fn fragments_are_joined_with_control_frames_between_them() {
        let mut r = Reassembly::new(16);
        // "👋" is F0 9F 91 8B: cut inside the character.
        assert_eq!(r.push(frame(false, OpCode::Text, b"\xf0\x9f")), Ok(None));
        assert_eq!(r.push(frame(true, OpCode::Ping, b"")), Ok(Some(Inbound::Ping(Bytes::new()))));
        assert_eq!(r.push(frame(false, OpCode::Continue, b"\x91")), Ok(None));
        assert_eq!(r.push(frame(true, OpCode::Continue, b"\x8b")), Ok(Some(Inbound::Text("👋".into()))));
        assert_eq!(r.push(frame(false, OpCode::Binary, &[1])), Ok(None));
        assert_eq!(r.push(frame(true, OpCode::Continue, &[2])), Ok(Some(Inbound::Binary(Bytes::from_static(&[1, 2])))));
    }

    #[test]
    fn the_cap_is_on_the_whole_message() {
        let mut r = Reassembly::new(8);
        assert_eq!(r.push(frame(false, OpCode::Text, b"1234")), Ok(None));
        assert_eq!(r.push(frame(false, OpCode::Continue, b"5678")), Ok(None));
        assert_eq!(r.push(frame(true, OpCode::Continue, b"9")), Err(Broken::TooLarge));
        let mut r = Reassembly::new(8);
        assert_eq!(r.push(frame(false, OpCode::Text, b"1234")), Ok(None));
        assert_eq!(r.push(frame(true, OpCode::Continue, b"5678")), Ok(Some(Inbound::Text("12345678".into()))));
    }

    #[test]
    fn invalid_utf8_ends_with_its_own_reason() {
        let mut r = Reassembly::new(16);
        assert_eq!(r.push(frame(true, OpCode::Text, b"{\xff}")), Err(Broken::InvalidUtf8));
        let mut r = Reassembly::new(16);
        assert_eq!(r.push(frame(false, OpCode::Text, b"{\xc3")), Ok(None));
        assert_eq!(r.push(frame(true, OpCode::Continue, b"\x28}")), Err(Broken::InvalidUtf8));
    }

    #[test]
    fn broken_fragmentation_is_a_protocol_violation() {
        let violation = |frames: &[Frame]| {
            let mut r = Reassembly::new(16);
            let results: Vec<_> = frames.iter().map(|f| r.push(f.clone())).collect();
            matches!(results.last(), Some(Err(Broken::Protocol(_))))
        };
        assert!(violation(&[frame(false, OpCode::Continue, b"x")]));
        assert!(violation(&[frame(true, OpCode::Continue, b"x")]));
        assert!(violation(&[frame(false, OpCode::Text, b"x"), frame(true, OpCode::Text, b"y")]));
        assert!(violation(&[frame(false, OpCode::Text, b"x"), frame(false, OpCode::Binary, b"y")]));
        assert!(violation(&[frame(false, OpCode::Ping, b"")]));
        assert!(violation(&[frame(true, OpCode::Close, &[0x03, 0xe7])]), "close code 999");
        assert!(violation(&[frame(true, OpCode::Close, &[0x03])]), "a one-byte close payload");
    }
}
