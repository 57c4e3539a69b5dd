//! Identifier rules shared by tokens, signaling and the relay.
//!
//! Ids travel in URLs, Redis keys, log lines and JWT claims, so they are kept to a small,
//! printable alphabet with hard length caps. Every entry point validates with these functions
//! before an id touches any state.

use thiserror::Error;

/// What kind of identifier failed validation; each maps to its own error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    User,
    Room,
    Stream,
}

impl IdKind {
    /// The longest id of this kind, in bytes.
    pub fn max_len(self) -> usize {
        match self {
            IdKind::User => 64,
            IdKind::Room => 128,
            IdKind::Stream => 256,
        }
    }

    fn name(self) -> &'static str {
        match self {
            IdKind::User => "userId",
            IdKind::Room => "roomId",
            IdKind::Stream => "streamId",
        }
    }

    fn allows(self, byte: u8) -> bool {
        let common = byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'~' | b'-');
        // User ids often embed e-mail-like or namespaced forms ("alice@corp", "tenant:42").
        common || (self == IdKind::User && matches!(byte, b'@' | b':'))
    }

    fn allowed_description(self) -> &'static str {
        match self {
            IdKind::User => "A-Z a-z 0-9 _ . ~ - @ :",
            _ => "A-Z a-z 0-9 _ . ~ -",
        }
    }
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum IdError {
    #[error("{} must be 1 to {} bytes long, got {len}", .kind.name(), .kind.max_len())]
    Length { kind: IdKind, len: usize },
    #[error("{} may only contain {}", .kind.name(), .kind.allowed_description())]
    Characters { kind: IdKind },
}

impl IdError {
    pub fn kind(&self) -> IdKind {
        match self {
            IdError::Length { kind, .. } | IdError::Characters { kind } => *kind,
        }
    }
}

/// Checks `value` against the rules for `kind`.
pub fn validate(kind: IdKind, value: &str) -> Result<(), IdError> {
    let len = value.len();
    if len == 0 || len > kind.max_len() {
        return Err(IdError::Length { kind, len });
    }
    if !value.bytes().all(|b| kind.allows(b)) {
        return Err(IdError::Characters { kind });
    }
    Ok(())
}

pub fn validate_user_id(value: &str) -> Result<(), IdError> {
    validate(IdKind::User, value)
}

pub fn validate_room_id(value: &str) -> Result<(), IdError> {
    validate(IdKind::Room, value)
}

pub fn validate_stream_id(value: &str) -> Result<(), IdError> {
    validate(IdKind::Stream, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ids_at_the_length_limits() {
        assert!(validate_user_id(&"u".repeat(64)).is_ok());
        assert!(validate_room_id(&"r".repeat(128)).is_ok());
        assert!(validate_stream_id(&"s".repeat(256)).is_ok());
        assert!(validate_user_id("a").is_ok());
    }

    #[test]
    fn rejects_empty_and_too_long_ids() {
        assert_eq!(validate_user_id(""), Err(IdError::Length { kind: IdKind::User, len: 0 }));
        assert_eq!(validate_user_id(&"u".repeat(65)), Err(IdError::Length { kind: IdKind::User, len: 65 }));
        assert!(validate_room_id(&"r".repeat(129)).is_err());
        assert!(validate_stream_id(&"s".repeat(257)).is_err());
    }

    #[test]
    fn user_ids_allow_at_and_colon_but_rooms_and_streams_do_not() {
        assert!(validate_user_id("alice@corp:1_a.b~c-d").is_ok());
        assert_eq!(validate_room_id("room@1"), Err(IdError::Characters { kind: IdKind::Room }));
        assert!(validate_stream_id("s:1").is_err());
    }

    #[test]
    fn rejects_spaces_slashes_unicode_and_control_bytes() {
        for bad in ["a b", "a/b", "ä", "a\nb", "a\0", "<script>", "a%20"] {
            assert!(validate_user_id(bad).is_err(), "{bad:?} accepted");
            assert!(validate_room_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn error_messages_name_the_field() {
        let err = validate_room_id("bad room").unwrap_err();
        assert_eq!(err.to_string(), "roomId may only contain A-Z a-z 0-9 _ . ~ -");
    }
}
