//! proptest strategies for every wire type, shared by the property tests
//! and the differential test against amq-protocol.
//!
//! `utf8` restricts shortstrs and table keys to UTF-8, which amq-protocol
//! needs (its `ShortString` is a `String`); our codec takes any octets.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use proptest::prelude::*;
use proptest::strategy::Union;
use warren_protocol::*;

pub fn short_str(utf8: bool) -> BoxedStrategy<ShortStr> {
    if utf8 {
        // At most 63 chars of at most 4 bytes: always within 255 bytes.
        prop_oneof![
            4 => "[a-z.#*_-]{0,12}",
            1 => "\\PC{0,63}",
        ]
        .prop_map(|s: String| ShortStr::try_from(s).unwrap())
        .boxed()
    } else {
        prop_oneof![
            4 => proptest::collection::vec(any::<u8>(), 0..16),
            1 => proptest::collection::vec(any::<u8>(), 0..=255),
        ]
        .prop_map(|v| ShortStr::new(Bytes::from(v)).unwrap())
        .boxed()
    }
}

pub fn long_str() -> BoxedStrategy<LongStr> {
    proptest::collection::vec(any::<u8>(), 0..64)
        .prop_map(LongStr::from)
        .boxed()
}

fn leaf_value() -> BoxedStrategy<FieldValue> {
    prop_oneof![
        any::<bool>().prop_map(FieldValue::Bool),
        any::<i8>().prop_map(FieldValue::I8),
        any::<u8>().prop_map(FieldValue::U8),
        any::<i16>().prop_map(FieldValue::I16),
        any::<u16>().prop_map(FieldValue::U16),
        any::<i32>().prop_map(FieldValue::I32),
        any::<u32>().prop_map(FieldValue::U32),
        any::<i64>().prop_map(FieldValue::I64),
        any::<f32>().prop_map(FieldValue::F32),
        any::<f64>().prop_map(FieldValue::F64),
        (any::<u8>(), any::<u32>()).prop_map(|(scale, value)| FieldValue::Decimal { scale, value }),
        long_str().prop_map(FieldValue::LongStr),
        any::<u64>().prop_map(FieldValue::Timestamp),
        Just(FieldValue::Void),
        proptest::collection::vec(any::<u8>(), 0..32)
            .prop_map(|v| FieldValue::Bytes(Bytes::from(v))),
    ]
    .boxed()
}

/// Values of every type, tables and arrays nested up to 3 deep.
pub fn field_value(utf8: bool) -> BoxedStrategy<FieldValue> {
    leaf_value()
        .prop_recursive(3, 32, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6)
                    .prop_map(|v| FieldValue::Array(v.into_iter().collect())),
                proptest::collection::vec((short_str(utf8), inner), 0..6)
                    .prop_map(|v| FieldValue::Table(FieldTable::from_entries(v))),
            ]
        })
        .boxed()
}

pub fn field_table(utf8: bool) -> BoxedStrategy<FieldTable> {
    proptest::collection::vec((short_str(utf8), field_value(utf8)), 0..8)
        .prop_map(FieldTable::from_entries)
        .boxed()
}

pub fn properties(utf8: bool) -> BoxedStrategy<BasicProperties> {
    let ss = move || proptest::option::of(short_str(utf8));
    (
        (
            ss(),
            ss(),
            proptest::option::of(field_table(utf8)),
            any::<Option<u8>>(),
            any::<Option<u8>>(),
            ss(),
            ss(),
        ),
        (ss(), ss(), any::<Option<u64>>(), ss(), ss(), ss(), ss()),
    )
        .prop_map(
            |(
                (
                    content_type,
                    content_encoding,
                    headers,
                    delivery_mode,
                    priority,
                    correlation_id,
                    reply_to,
                ),
                (expiration, message_id, timestamp, kind, user_id, app_id, cluster_id),
            )| BasicProperties {
                content_type,
                content_encoding,
                headers,
                delivery_mode,
                priority,
                correlation_id,
                reply_to,
                expiration,
                message_id,
                timestamp,
                kind,
                user_id,
                app_id,
                cluster_id,
            },
        )
        .boxed()
}

/// Every method, with arbitrary arguments.
pub fn method(utf8: bool) -> BoxedStrategy<Method> {
    let ss = move || short_str(utf8);
    let table = move || field_table(utf8);
    let b = any::<bool>;
    let all: Vec<BoxedStrategy<Method>> = vec![
        (any::<u8>(), any::<u8>(), table(), long_str(), long_str())
            .prop_map(
                |(version_major, version_minor, server_properties, mechanisms, locales)| {
                    Method::ConnectionStart(ConnectionStart {
                        version_major,
                        version_minor,
                        server_properties,
                        mechanisms,
                        locales,
                    })
                },
            )
            .boxed(),
        (table(), ss(), long_str(), ss())
            .prop_map(|(client_properties, mechanism, response, locale)| {
                Method::ConnectionStartOk(ConnectionStartOk {
                    client_properties,
                    mechanism,
                    response,
                    locale,
                })
            })
            .boxed(),
        long_str()
            .prop_map(|challenge| Method::ConnectionSecure(ConnectionSecure { challenge }))
            .boxed(),
        long_str()
            .prop_map(|response| Method::ConnectionSecureOk(ConnectionSecureOk { response }))
            .boxed(),
        (any::<u16>(), any::<u32>(), any::<u16>())
            .prop_map(|(channel_max, frame_max, heartbeat)| {
                Method::ConnectionTune(ConnectionTune {
                    channel_max,
                    frame_max,
                    heartbeat,
                })
            })
            .boxed(),
        (any::<u16>(), any::<u32>(), any::<u16>())
            .prop_map(|(channel_max, frame_max, heartbeat)| {
                Method::ConnectionTuneOk(ConnectionTuneOk {
                    channel_max,
                    frame_max,
                    heartbeat,
                })
            })
            .boxed(),
        ss().prop_map(|virtual_host| Method::ConnectionOpen(ConnectionOpen { virtual_host }))
            .boxed(),
        Just(Method::ConnectionOpenOk).boxed(),
        (any::<u16>(), ss(), any::<u16>(), any::<u16>())
            .prop_map(|(reply_code, reply_text, class_id, method_id)| {
                Method::ConnectionClose(ConnectionClose {
                    reply_code,
                    reply_text,
                    class_id,
                    method_id,
                })
            })
            .boxed(),
        Just(Method::ConnectionCloseOk).boxed(),
        ss().prop_map(|reason| Method::ConnectionBlocked(ConnectionBlocked { reason }))
            .boxed(),
        Just(Method::ConnectionUnblocked).boxed(),
        (long_str(), ss())
            .prop_map(|(new_secret, reason)| {
                Method::ConnectionUpdateSecret(ConnectionUpdateSecret { new_secret, reason })
            })
            .boxed(),
        Just(Method::ConnectionUpdateSecretOk).boxed(),
        Just(Method::ChannelOpen).boxed(),
        Just(Method::ChannelOpenOk).boxed(),
        b().prop_map(|active| Method::ChannelFlow(ChannelFlow { active }))
            .boxed(),
        b().prop_map(|active| Method::ChannelFlowOk(ChannelFlowOk { active }))
            .boxed(),
        (any::<u16>(), ss(), any::<u16>(), any::<u16>())
            .prop_map(|(reply_code, reply_text, class_id, method_id)| {
                Method::ChannelClose(ChannelClose {
                    reply_code,
                    reply_text,
                    class_id,
                    method_id,
                })
            })
            .boxed(),
        Just(Method::ChannelCloseOk).boxed(),
        (ss(), ss(), b(), b(), b(), b(), b(), table())
            .prop_map(
                |(exchange, kind, passive, durable, auto_delete, internal, no_wait, arguments)| {
                    Method::ExchangeDeclare(ExchangeDeclare {
                        exchange,
                        kind,
                        passive,
                        durable,
                        auto_delete,
                        internal,
                        no_wait,
                        arguments,
                    })
                },
            )
            .boxed(),
        Just(Method::ExchangeDeclareOk).boxed(),
        (ss(), b(), b())
            .prop_map(|(exchange, if_unused, no_wait)| {
                Method::ExchangeDelete(ExchangeDelete {
                    exchange,
                    if_unused,
                    no_wait,
                })
            })
            .boxed(),
        Just(Method::ExchangeDeleteOk).boxed(),
        (ss(), ss(), ss(), b(), table())
            .prop_map(|(destination, source, routing_key, no_wait, arguments)| {
                Method::ExchangeBind(ExchangeBind {
                    destination,
                    source,
                    routing_key,
                    no_wait,
                    arguments,
                })
            })
            .boxed(),
        Just(Method::ExchangeBindOk).boxed(),
        (ss(), ss(), ss(), b(), table())
            .prop_map(|(destination, source, routing_key, no_wait, arguments)| {
                Method::ExchangeUnbind(ExchangeUnbind {
                    destination,
                    source,
                    routing_key,
                    no_wait,
                    arguments,
                })
            })
            .boxed(),
        Just(Method::ExchangeUnbindOk).boxed(),
        (ss(), b(), b(), b(), b(), b(), table())
            .prop_map(
                |(queue, passive, durable, exclusive, auto_delete, no_wait, arguments)| {
                    Method::QueueDeclare(QueueDeclare {
                        queue,
                        passive,
                        durable,
                        exclusive,
                        auto_delete,
                        no_wait,
                        arguments,
                    })
                },
            )
            .boxed(),
        (ss(), any::<u32>(), any::<u32>())
            .prop_map(|(queue, message_count, consumer_count)| {
                Method::QueueDeclareOk(QueueDeclareOk {
                    queue,
                    message_count,
                    consumer_count,
                })
            })
            .boxed(),
        (ss(), ss(), ss(), b(), table())
            .prop_map(|(queue, exchange, routing_key, no_wait, arguments)| {
                Method::QueueBind(QueueBind {
                    queue,
                    exchange,
                    routing_key,
                    no_wait,
                    arguments,
                })
            })
            .boxed(),
        Just(Method::QueueBindOk).boxed(),
        (ss(), b())
            .prop_map(|(queue, no_wait)| Method::QueuePurge(QueuePurge { queue, no_wait }))
            .boxed(),
        any::<u32>()
            .prop_map(|message_count| Method::QueuePurgeOk(QueuePurgeOk { message_count }))
            .boxed(),
        (ss(), b(), b(), b())
            .prop_map(|(queue, if_unused, if_empty, no_wait)| {
                Method::QueueDelete(QueueDelete {
                    queue,
                    if_unused,
                    if_empty,
                    no_wait,
                })
            })
            .boxed(),
        any::<u32>()
            .prop_map(|message_count| Method::QueueDeleteOk(QueueDeleteOk { message_count }))
            .boxed(),
        (ss(), ss(), ss(), table())
            .prop_map(|(queue, exchange, routing_key, arguments)| {
                Method::QueueUnbind(QueueUnbind {
                    queue,
                    exchange,
                    routing_key,
                    arguments,
                })
            })
            .boxed(),
        Just(Method::QueueUnbindOk).boxed(),
        (any::<u32>(), any::<u16>(), b())
            .prop_map(|(prefetch_size, prefetch_count, global)| {
                Method::BasicQos(BasicQos {
                    prefetch_size,
                    prefetch_count,
                    global,
                })
            })
            .boxed(),
        Just(Method::BasicQosOk).boxed(),
        (ss(), ss(), b(), b(), b(), b(), table())
            .prop_map(
                |(queue, consumer_tag, no_local, no_ack, exclusive, no_wait, arguments)| {
                    Method::BasicConsume(BasicConsume {
                        queue,
                        consumer_tag,
                        no_local,
                        no_ack,
                        exclusive,
                        no_wait,
                        arguments,
                    })
                },
            )
            .boxed(),
        ss().prop_map(|consumer_tag| Method::BasicConsumeOk(BasicConsumeOk { consumer_tag }))
            .boxed(),
        (ss(), b())
            .prop_map(|(consumer_tag, no_wait)| {
                Method::BasicCancel(BasicCancel {
                    consumer_tag,
                    no_wait,
                })
            })
            .boxed(),
        ss().prop_map(|consumer_tag| Method::BasicCancelOk(BasicCancelOk { consumer_tag }))
            .boxed(),
        (ss(), ss(), b(), b())
            .prop_map(|(exchange, routing_key, mandatory, immediate)| {
                Method::BasicPublish(BasicPublish {
                    exchange,
                    routing_key,
                    mandatory,
                    immediate,
                })
            })
            .boxed(),
        (any::<u16>(), ss(), ss(), ss())
            .prop_map(|(reply_code, reply_text, exchange, routing_key)| {
                Method::BasicReturn(BasicReturn {
                    reply_code,
                    reply_text,
                    exchange,
                    routing_key,
                })
            })
            .boxed(),
        (ss(), any::<u64>(), b(), ss(), ss())
            .prop_map(
                |(consumer_tag, delivery_tag, redelivered, exchange, routing_key)| {
                    Method::BasicDeliver(BasicDeliver {
                        consumer_tag,
                        delivery_tag,
                        redelivered,
                        exchange,
                        routing_key,
                    })
                },
            )
            .boxed(),
        (ss(), b())
            .prop_map(|(queue, no_ack)| Method::BasicGet(BasicGet { queue, no_ack }))
            .boxed(),
        (any::<u64>(), b(), ss(), ss(), any::<u32>())
            .prop_map(
                |(delivery_tag, redelivered, exchange, routing_key, message_count)| {
                    Method::BasicGetOk(BasicGetOk {
                        delivery_tag,
                        redelivered,
                        exchange,
                        routing_key,
                        message_count,
                    })
                },
            )
            .boxed(),
        Just(Method::BasicGetEmpty).boxed(),
        (any::<u64>(), b())
            .prop_map(|(delivery_tag, multiple)| {
                Method::BasicAck(BasicAck {
                    delivery_tag,
                    multiple,
                })
            })
            .boxed(),
        (any::<u64>(), b())
            .prop_map(|(delivery_tag, requeue)| {
                Method::BasicReject(BasicReject {
                    delivery_tag,
                    requeue,
                })
            })
            .boxed(),
        b().prop_map(|requeue| Method::BasicRecoverAsync(BasicRecoverAsync { requeue }))
            .boxed(),
        b().prop_map(|requeue| Method::BasicRecover(BasicRecover { requeue }))
            .boxed(),
        Just(Method::BasicRecoverOk).boxed(),
        (any::<u64>(), b(), b())
            .prop_map(|(delivery_tag, multiple, requeue)| {
                Method::BasicNack(BasicNack {
                    delivery_tag,
                    multiple,
                    requeue,
                })
            })
            .boxed(),
        b().prop_map(|no_wait| Method::ConfirmSelect(ConfirmSelect { no_wait }))
            .boxed(),
        Just(Method::ConfirmSelectOk).boxed(),
        Just(Method::TxSelect).boxed(),
        Just(Method::TxSelectOk).boxed(),
        Just(Method::TxCommit).boxed(),
        Just(Method::TxCommitOk).boxed(),
        Just(Method::TxRollback).boxed(),
        Just(Method::TxRollbackOk).boxed(),
    ];
    Union::new(all).boxed()
}
