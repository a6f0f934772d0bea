//! Class `queue` (50).

use crate::table::FieldTable;
use crate::types::ShortStr;

method_struct! {
    /// `queue.declare`; an empty `queue` asks the server to name it.
    QueueDeclare {
        reserved ticket: u16,
        queue: ShortStr,
        passive: bool,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
        no_wait: bool,
        arguments: FieldTable,
    }
}

method_struct! {
    /// `queue.declare-ok`
    QueueDeclareOk {
        queue: ShortStr,
        message_count: u32,
        consumer_count: u32,
    }
}

method_struct! {
    /// `queue.bind`
    QueueBind {
        reserved ticket: u16,
        queue: ShortStr,
        exchange: ShortStr,
        routing_key: ShortStr,
        no_wait: bool,
        arguments: FieldTable,
    }
}

method_struct! {
    /// `queue.purge`
    QueuePurge {
        reserved ticket: u16,
        queue: ShortStr,
        no_wait: bool,
    }
}

method_struct! {
    /// `queue.purge-ok`
    QueuePurgeOk {
        message_count: u32,
    }
}

method_struct! {
    /// `queue.delete`
    QueueDelete {
        reserved ticket: u16,
        queue: ShortStr,
        if_unused: bool,
        if_empty: bool,
        no_wait: bool,
    }
}

method_struct! {
    /// `queue.delete-ok`
    QueueDeleteOk {
        message_count: u32,
    }
}

method_struct! {
    /// `queue.unbind` (no `no_wait`: it is always synchronous)
    QueueUnbind {
        reserved ticket: u16,
        queue: ShortStr,
        exchange: ShortStr,
        routing_key: ShortStr,
        arguments: FieldTable,
    }
}
