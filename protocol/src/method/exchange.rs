//! Class `exchange` (40), with RabbitMQ's exchange-to-exchange bindings.

use crate::table::FieldTable;
use crate::types::ShortStr;

method_struct! {
    /// `exchange.declare`. `auto_delete` and `internal` are reserved bits
    /// in the 0-9-1 spec; RabbitMQ gives them these meanings.
    ExchangeDeclare {
        reserved ticket: u16,
        exchange: ShortStr,
        /// The spec's `type`: "direct", "fanout", "topic", "headers"...
        kind: ShortStr,
        passive: bool,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        no_wait: bool,
        arguments: FieldTable,
    }
}

method_struct! {
    /// `exchange.delete`
    ExchangeDelete {
        reserved ticket: u16,
        exchange: ShortStr,
        if_unused: bool,
        no_wait: bool,
    }
}

method_struct! {
    /// `exchange.bind` (RabbitMQ)
    ExchangeBind {
        reserved ticket: u16,
        destination: ShortStr,
        source: ShortStr,
        routing_key: ShortStr,
        no_wait: bool,
        arguments: FieldTable,
    }
}

method_struct! {
    /// `exchange.unbind` (RabbitMQ)
    ExchangeUnbind {
        reserved ticket: u16,
        destination: ShortStr,
        source: ShortStr,
        routing_key: ShortStr,
        no_wait: bool,
        arguments: FieldTable,
    }
}
