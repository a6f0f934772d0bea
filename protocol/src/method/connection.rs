//! Class `connection` (10): negotiation, tuning, close, and RabbitMQ's
//! blocked/unblocked and update-secret extensions.

use crate::table::FieldTable;
use crate::types::{LongStr, ShortStr};

method_struct! {
    /// `connection.start`: the server's greeting.
    ConnectionStart {
        version_major: u8,
        version_minor: u8,
        server_properties: FieldTable,
        /// Space-separated SASL mechanisms.
        mechanisms: LongStr,
        /// Space-separated locales.
        locales: LongStr,
    }
}

method_struct! {
    /// `connection.start-ok`
    ConnectionStartOk {
        client_properties: FieldTable,
        mechanism: ShortStr,
        response: LongStr,
        locale: ShortStr,
    }
}

method_struct! {
    /// `connection.secure`
    ConnectionSecure {
        challenge: LongStr,
    }
}

method_struct! {
    /// `connection.secure-ok`
    ConnectionSecureOk {
        response: LongStr,
    }
}

method_struct! {
    /// `connection.tune`: the server's limits; 0 means "no limit".
    ConnectionTune {
        channel_max: u16,
        frame_max: u32,
        /// Seconds; 0 disables heartbeats.
        heartbeat: u16,
    }
}

method_struct! {
    /// `connection.tune-ok`: what the client settled on.
    ConnectionTuneOk {
        channel_max: u16,
        frame_max: u32,
        heartbeat: u16,
    }
}

method_struct! {
    /// `connection.open`
    ConnectionOpen {
        virtual_host: ShortStr,
        reserved capabilities: ShortStr,
        reserved insist: bool,
    }
}

method_struct! {
    /// `connection.close`: `class_id`/`method_id` name the method that
    /// caused the close, or are 0.
    ConnectionClose {
        reply_code: u16,
        reply_text: ShortStr,
        class_id: u16,
        method_id: u16,
    }
}

method_struct! {
    /// `connection.blocked` (RabbitMQ): the server stopped reading
    /// publishes, e.g. on a memory alarm.
    ConnectionBlocked {
        reason: ShortStr,
    }
}

method_struct! {
    /// `connection.update-secret` (RabbitMQ): a new credential, e.g. a
    /// refreshed OAuth token.
    ConnectionUpdateSecret {
        new_secret: LongStr,
        reason: ShortStr,
    }
}
