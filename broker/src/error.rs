//! AMQP exceptions raised by the broker core.
//!
//! Every error a client can cause becomes an [`AmqpError`]: a reply code from
//! the spec plus a readable text in RabbitMQ's style. Whether it closes the
//! channel or the connection follows from the code.

use warren_protocol::ReplyCode;

/// An AMQP exception: the reply code, the text, and the method that caused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} - {text}", code.name())]
pub struct AmqpError {
    pub code: ReplyCode,
    pub text: String,
    pub class_id: u16,
    pub method_id: u16,
}

impl AmqpError {
    pub fn new(code: ReplyCode, text: impl Into<String>) -> AmqpError {
        AmqpError {
            code,
            text: text.into(),
            class_id: 0,
            method_id: 0,
        }
    }

    /// Records the method that caused the error, for the close frame.
    pub fn caused_by(mut self, class_id: u16, method_id: u16) -> AmqpError {
        if self.class_id == 0 && self.method_id == 0 {
            self.class_id = class_id;
            self.method_id = method_id;
        }
        self
    }

    /// Hard errors close the connection; soft ones only the channel.
    pub fn is_connection_level(&self) -> bool {
        self.code.is_connection_level()
    }

    /// The reply text as sent on the wire: `NOT_FOUND - no queue 'q' in vhost '/'`.
    pub fn reply_text(&self) -> String {
        let mut t = format!("{} - {}", self.code.name(), self.text);
        // A shortstr holds at most 255 bytes; cut at a char boundary.
        if t.len() > 255 {
            let mut end = 255;
            while !t.is_char_boundary(end) {
                end -= 1;
            }
            t.truncate(end);
        }
        t
    }

    pub fn not_found(text: impl Into<String>) -> AmqpError {
        AmqpError::new(ReplyCode::NotFound, text)
    }
    pub fn precondition(text: impl Into<String>) -> AmqpError {
        AmqpError::new(ReplyCode::PreconditionFailed, text)
    }
    pub fn access_refused(text: impl Into<String>) -> AmqpError {
        AmqpError::new(ReplyCode::AccessRefused, text)
    }
    pub fn resource_locked(text: impl Into<String>) -> AmqpError {
        AmqpError::new(ReplyCode::ResourceLocked, text)
    }
    pub fn command_invalid(text: impl Into<String>) -> AmqpError {
        AmqpError::new(ReplyCode::CommandInvalid, text)
    }
    pub fn not_allowed(text: impl Into<String>) -> AmqpError {
        AmqpError::new(ReplyCode::NotAllowed, text)
    }
    pub fn not_implemented(text: impl Into<String>) -> AmqpError {
        AmqpError::new(ReplyCode::NotImplemented, text)
    }
    pub fn channel_error(text: impl Into<String>) -> AmqpError {
        AmqpError::new(ReplyCode::ChannelError, text)
    }
    pub fn unexpected_frame(text: impl Into<String>) -> AmqpError {
        AmqpError::new(ReplyCode::UnexpectedFrame, text)
    }
    pub fn frame_error(text: impl Into<String>) -> AmqpError {
        AmqpError::new(ReplyCode::FrameError, text)
    }
    pub fn syntax_error(text: impl Into<String>) -> AmqpError {
        AmqpError::new(ReplyCode::SyntaxError, text)
    }
    pub fn internal(text: impl Into<String>) -> AmqpError {
        AmqpError::new(ReplyCode::InternalError, text)
    }
}

/// `'name'`-style quoting used in RabbitMQ's texts, lossy for non-UTF-8 names.
pub(crate) fn q(name: &warren_protocol::ShortStr) -> String {
    format!("'{}'", name.to_string_lossy())
}
