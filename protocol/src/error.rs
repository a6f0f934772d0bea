//! What can go wrong decoding bytes from a peer, and the reply code that
//! RabbitMQ answers each problem with.

use crate::reply::ReplyCode;
use crate::table::MAX_NESTING_DEPTH;

/// Bytes from the peer that are not a valid AMQP 0-9-1 frame.
///
/// Every variant is a hard (connection-level) error: the broker answers with
/// `connection.close` carrying [`DecodeError::reply_code`].
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum DecodeError {
    /// The frame header announces more than the negotiated `frame_max`
    /// (`size` counts the 7-byte header and the frame-end octet).
    #[error("frame size {size} exceeds frame_max {max}")]
    FrameTooLarge { size: u64, max: u32 },
    /// The octet after the payload is not 0xCE.
    #[error("invalid frame end marker {0:#04x}, expected 0xce")]
    BadFrameEnd(u8),
    /// A frame type other than method, header, body or heartbeat.
    #[error("unknown frame type {0}")]
    UnknownFrameType(u8),
    /// A heartbeat frame must have an empty payload.
    #[error("heartbeat frame with a {0}-byte payload")]
    BadHeartbeat(u32),
    /// A method frame for a class/method pair that AMQP 0-9-1 (with
    /// RabbitMQ's extensions) does not define.
    #[error("unknown method {class_id}/{method_id}")]
    UnknownMethod { class_id: u16, method_id: u16 },
    /// A complete frame whose payload ends before its last field.
    #[error("cannot decode frame payload: it ends too soon")]
    Truncated,
    /// A complete frame whose payload goes on after its last field.
    #[error("cannot decode frame payload: unexpected bytes after the last field")]
    TrailingBytes,
    /// A field table or array holds a value type letter RabbitMQ does not know.
    #[error("unknown field value type {letter:?} ({0:#04x})", letter = char::from(*.0))]
    InvalidFieldType(u8),
    /// Field tables/arrays nested deeper than [`MAX_NESTING_DEPTH`].
    #[error("field tables nested more than {MAX_NESTING_DEPTH} deep")]
    TableTooDeep,
}

impl DecodeError {
    /// The reply code for the `connection.close` that answers this error.
    ///
    /// RabbitMQ answers every frame it cannot decode (bad framing, but also
    /// method arguments that end too soon or run on: `rabbit_misc:frame_error`,
    /// "cannot decode") with 501 FRAME_ERROR, and we do the same. A value
    /// type letter it does not know is an illegal field value, which the
    /// spec calls 502 SYNTAX_ERROR. An unknown class/method makes RabbitMQ
    /// drop the connection without a close; we send the spec's 540
    /// NOT_IMPLEMENTED instead so the client learns why.
    pub fn reply_code(&self) -> ReplyCode {
        match self {
            DecodeError::FrameTooLarge { .. }
            | DecodeError::BadFrameEnd(_)
            | DecodeError::UnknownFrameType(_)
            | DecodeError::BadHeartbeat(_)
            | DecodeError::Truncated
            | DecodeError::TrailingBytes => ReplyCode::FrameError,
            DecodeError::InvalidFieldType(_) | DecodeError::TableTooDeep => ReplyCode::SyntaxError,
            DecodeError::UnknownMethod { .. } => ReplyCode::NotImplemented,
        }
    }

    /// A reply text ready for `connection.close`, in RabbitMQ's
    /// `"FRAME_ERROR - ..."` form and cut to fit a shortstr.
    pub fn reply_text(&self) -> String {
        let mut text = format!("{} - {}", self.reply_code().name(), self);
        if text.len() > 255 {
            let mut end = 255;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_texts_name_the_code() {
        let e = DecodeError::FrameTooLarge {
            size: 5000,
            max: 4096,
        };
        assert_eq!(
            e.reply_text(),
            "FRAME_ERROR - frame size 5000 exceeds frame_max 4096"
        );
        assert_eq!(
            DecodeError::InvalidFieldType(b'?').reply_text(),
            "SYNTAX_ERROR - unknown field value type '?' (0x3f)"
        );
        assert_eq!(
            DecodeError::UnknownMethod {
                class_id: 60,
                method_id: 41
            }
            .reply_text(),
            "NOT_IMPLEMENTED - unknown method 60/41"
        );
    }
}
