//! Class `basic` (60), with RabbitMQ's `basic.nack`.

use bytes::{Buf, Bytes};
use nom::bytes::complete::take;
use nom::number::complete::{be_u16, be_u8};
use nom::Parser;

use crate::error::DecodeError;
use crate::table::FieldTable;
use crate::types::ShortStr;
use crate::wire::{finish, short_bytes};

method_struct! {
    /// `basic.qos`; RabbitMQ reads `global` as "per channel" (true) or
    /// "per consumer" (false).
    BasicQos {
        prefetch_size: u32,
        prefetch_count: u16,
        global: bool,
    }
}

method_struct! {
    /// `basic.consume`; an empty `consumer_tag` asks the server for one.
    BasicConsume {
        reserved ticket: u16,
        queue: ShortStr,
        consumer_tag: ShortStr,
        no_local: bool,
        no_ack: bool,
        exclusive: bool,
        no_wait: bool,
        arguments: FieldTable,
    }
}

method_struct! {
    /// `basic.consume-ok`
    BasicConsumeOk {
        consumer_tag: ShortStr,
    }
}

method_struct! {
    /// `basic.cancel`; RabbitMQ also sends it to a client whose queue went
    /// away (consumer cancel notification).
    BasicCancel {
        consumer_tag: ShortStr,
        no_wait: bool,
    }
}

method_struct! {
    /// `basic.cancel-ok`
    BasicCancelOk {
        consumer_tag: ShortStr,
    }
}

method_struct! {
    /// `basic.publish` (content follows)
    BasicPublish {
        reserved ticket: u16,
        exchange: ShortStr,
        routing_key: ShortStr,
        mandatory: bool,
        immediate: bool,
    }
}

impl BasicPublish {
    /// Decodes a whole basic.publish payload (ids included), the method a
    /// broker decodes most. Each string costs an atomic reference count on
    /// the read buffer; the routing key reuses the payload's own instead,
    /// trimmed in place, which is a measurable share of a publish.
    #[inline(always)]
    pub(crate) fn decode_owned(mut payload: Bytes) -> Result<BasicPublish, DecodeError> {
        let fields = (take(4usize), be_u16, short_bytes, short_bytes, be_u8)
            .parse_complete(payload.as_ref());
        let (rest, (_ids, _ticket, exchange, routing_key, bits)) = finish(fields)?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes);
        }
        let exchange = ShortStr::from_wire(payload.slice_ref(exchange));
        let key_at = routing_key.as_ptr() as usize - payload.as_ptr() as usize;
        let key_len = routing_key.len();
        payload.advance(key_at);
        payload.truncate(key_len);
        Ok(BasicPublish {
            exchange,
            routing_key: ShortStr::from_wire(payload),
            mandatory: bits & 1 != 0,
            immediate: bits & 2 != 0,
        })
    }
}

method_struct! {
    /// `basic.return` (content follows)
    BasicReturn {
        reply_code: u16,
        reply_text: ShortStr,
        exchange: ShortStr,
        routing_key: ShortStr,
    }
}

method_struct! {
    /// `basic.deliver` (content follows)
    BasicDeliver {
        consumer_tag: ShortStr,
        delivery_tag: u64,
        redelivered: bool,
        exchange: ShortStr,
        routing_key: ShortStr,
    }
}

method_struct! {
    /// `basic.get`
    BasicGet {
        reserved ticket: u16,
        queue: ShortStr,
        no_ack: bool,
    }
}

method_struct! {
    /// `basic.get-ok` (content follows)
    BasicGetOk {
        delivery_tag: u64,
        redelivered: bool,
        exchange: ShortStr,
        routing_key: ShortStr,
        message_count: u32,
    }
}

method_struct! {
    /// `basic.ack`; also a publisher confirm from the server.
    BasicAck {
        delivery_tag: u64,
        multiple: bool,
    }
}

method_struct! {
    /// `basic.reject`
    BasicReject {
        delivery_tag: u64,
        requeue: bool,
    }
}

method_struct! {
    /// `basic.recover-async` (deprecated, still accepted by RabbitMQ)
    BasicRecoverAsync {
        requeue: bool,
    }
}

method_struct! {
    /// `basic.recover`
    BasicRecover {
        requeue: bool,
    }
}

method_struct! {
    /// `basic.nack` (RabbitMQ); also a negative publisher confirm.
    BasicNack {
        delivery_tag: u64,
        multiple: bool,
        requeue: bool,
    }
}
