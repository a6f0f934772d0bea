//! AMQP reply codes as RabbitMQ uses them.

use std::fmt;

/// A reply code carried by `connection.close`, `channel.close` and
/// `basic.return`.
#[repr(u16)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReplyCode {
    Success = 200,
    /// Soft: the message is too large for the server (basic.return).
    ContentTooLarge = 311,
    /// Soft: a mandatory message could not be routed (basic.return).
    NoRoute = 312,
    /// Soft: an immediate message found no consumer (basic.return).
    NoConsumers = 313,
    /// Hard: an operator closed the connection (e.g. broker shutdown).
    ConnectionForced = 320,
    /// Hard: the client asked for a virtual host that is not valid.
    InvalidPath = 402,
    /// Soft, or hard during connection.open: not permitted.
    AccessRefused = 403,
    NotFound = 404,
    /// Soft: e.g. an exclusive queue of another connection.
    ResourceLocked = 405,
    /// Soft: e.g. redeclaring with different arguments.
    PreconditionFailed = 406,
    FrameError = 501,
    SyntaxError = 502,
    CommandInvalid = 503,
    ChannelError = 504,
    UnexpectedFrame = 505,
    ResourceError = 506,
    NotAllowed = 530,
    NotImplemented = 540,
    InternalError = 541,
}

impl ReplyCode {
    /// Every reply code, in numeric order.
    pub const ALL: [ReplyCode; 19] = [
        ReplyCode::Success,
        ReplyCode::ContentTooLarge,
        ReplyCode::NoRoute,
        ReplyCode::NoConsumers,
        ReplyCode::ConnectionForced,
        ReplyCode::InvalidPath,
        ReplyCode::AccessRefused,
        ReplyCode::NotFound,
        ReplyCode::ResourceLocked,
        ReplyCode::PreconditionFailed,
        ReplyCode::FrameError,
        ReplyCode::SyntaxError,
        ReplyCode::CommandInvalid,
        ReplyCode::ChannelError,
        ReplyCode::UnexpectedFrame,
        ReplyCode::ResourceError,
        ReplyCode::NotAllowed,
        ReplyCode::NotImplemented,
        ReplyCode::InternalError,
    ];

    pub fn code(self) -> u16 {
        self as u16
    }

    /// The spec's constant name, as RabbitMQ puts it in reply texts.
    pub fn name(self) -> &'static str {
        match self {
            ReplyCode::Success => "REPLY_SUCCESS",
            ReplyCode::ContentTooLarge => "CONTENT_TOO_LARGE",
            ReplyCode::NoRoute => "NO_ROUTE",
            ReplyCode::NoConsumers => "NO_CONSUMERS",
            ReplyCode::ConnectionForced => "CONNECTION_FORCED",
            ReplyCode::InvalidPath => "INVALID_PATH",
            ReplyCode::AccessRefused => "ACCESS_REFUSED",
            ReplyCode::NotFound => "NOT_FOUND",
            ReplyCode::ResourceLocked => "RESOURCE_LOCKED",
            ReplyCode::PreconditionFailed => "PRECONDITION_FAILED",
            ReplyCode::FrameError => "FRAME_ERROR",
            ReplyCode::SyntaxError => "SYNTAX_ERROR",
            ReplyCode::CommandInvalid => "COMMAND_INVALID",
            ReplyCode::ChannelError => "CHANNEL_ERROR",
            ReplyCode::UnexpectedFrame => "UNEXPECTED_FRAME",
            ReplyCode::ResourceError => "RESOURCE_ERROR",
            ReplyCode::NotAllowed => "NOT_ALLOWED",
            ReplyCode::NotImplemented => "NOT_IMPLEMENTED",
            ReplyCode::InternalError => "INTERNAL_ERROR",
        }
    }

    /// Hard errors close the connection; soft ones only the channel.
    ///
    /// 403 is soft here although RabbitMQ raises it as a connection error
    /// during connection.open: that case is the handshake's to decide.
    pub fn is_connection_level(self) -> bool {
        matches!(
            self,
            ReplyCode::ConnectionForced
                | ReplyCode::InvalidPath
                | ReplyCode::FrameError
                | ReplyCode::SyntaxError
                | ReplyCode::CommandInvalid
                | ReplyCode::ChannelError
                | ReplyCode::UnexpectedFrame
                | ReplyCode::ResourceError
                | ReplyCode::NotAllowed
                | ReplyCode::NotImplemented
                | ReplyCode::InternalError
        )
    }

    pub fn from_u16(code: u16) -> Option<ReplyCode> {
        ReplyCode::ALL.iter().copied().find(|c| c.code() == code)
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.name())
    }
}

impl From<ReplyCode> for u16 {
    fn from(code: ReplyCode) -> u16 {
        code.code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_u16() {
        for code in ReplyCode::ALL {
            assert_eq!(ReplyCode::from_u16(code.code()), Some(code));
        }
        assert_eq!(ReplyCode::from_u16(999), None);
        assert_eq!(ReplyCode::PreconditionFailed.code(), 406);
        assert_eq!(ReplyCode::PreconditionFailed.name(), "PRECONDITION_FAILED");
    }

    #[test]
    fn hard_and_soft_errors() {
        let hard: Vec<u16> = ReplyCode::ALL
            .iter()
            .filter(|c| c.is_connection_level())
            .map(|c| c.code())
            .collect();
        assert_eq!(
            hard,
            [320, 402, 501, 502, 503, 504, 505, 506, 530, 540, 541]
        );
    }
}
