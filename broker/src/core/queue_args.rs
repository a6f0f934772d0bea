//! The `x-` arguments of queue.declare: parsed once, validated as RabbitMQ does.

use std::time::Duration;

use warren_protocol::{FieldTable, FieldValue, ShortStr};

use crate::error::AmqpError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// `classic` / `standard` / absent.
    Standard,
    /// `quorum`: a durable standard queue that honours delivery limits.
    Quorum,
    /// `fifo`: message groups and deduplication.
    Fifo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    DropHead,
    RejectPublish,
    RejectPublishDlx,
}

/// What a queue's arguments ask for.
#[derive(Debug, Clone)]
pub struct QueueArgs {
    pub kind: QueueKind,
    pub message_ttl: Option<Duration>,
    pub expires: Option<Duration>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    pub dead_letter_exchange: Option<ShortStr>,
    pub dead_letter_routing_key: Option<ShortStr>,
    pub max_priority: Option<u8>,
    pub single_active_consumer: bool,
    pub delivery_limit: Option<u64>,
    /// FIFO: how long an accepted deduplication id is remembered.
    pub dedup_window: Duration,
    /// FIFO: without an explicit id, deduplicate by a hash of the body.
    pub content_based_dedup: bool,
    /// `x-queue-mode = lazy`: messages go to the log as they arrive (with a
    /// data directory) and are read back when delivered.
    pub lazy: bool,
}

impl Default for QueueArgs {
    fn default() -> Self {
        QueueArgs {
            kind: QueueKind::Standard,
            message_ttl: None,
            expires: None,
            max_length: None,
            max_length_bytes: None,
            overflow: Overflow::DropHead,
            dead_letter_exchange: None,
            dead_letter_routing_key: None,
            max_priority: None,
            single_active_consumer: false,
            delivery_limit: None,
            dedup_window: Duration::from_millis(300_000),
            content_based_dedup: false,
            lazy: false,
        }
    }
}

/// RabbitMQ's name for a field type, as its error texts print it.
pub fn type_name(v: &FieldValue) -> &'static str {
    match v {
        FieldValue::Bool(_) => "bool",
        FieldValue::I8(_) | FieldValue::I16(_) | FieldValue::I32(_) | FieldValue::I64(_) => {
            "signedint"
        }
        FieldValue::U8(_) | FieldValue::U16(_) | FieldValue::U32(_) => "unsignedint",
        FieldValue::F32(_) | FieldValue::F64(_) => "double",
        FieldValue::Decimal { .. } => "decimal",
        FieldValue::LongStr(_) => "longstr",
        FieldValue::Array(_) => "array",
        FieldValue::Timestamp(_) => "timestamp",
        FieldValue::Table(_) => "table",
        FieldValue::Void => "void",
        FieldValue::Bytes(_) => "binary",
    }
}

struct Check<'a> {
    what: &'a str,
}

impl Check<'_> {
    fn fail(&self, arg: &str, detail: String) -> AmqpError {
        AmqpError::precondition(format!("invalid arg '{arg}' for {}: {detail}", self.what))
    }

    fn int(&self, arg: &str, v: &FieldValue) -> Result<i64, AmqpError> {
        v.as_i64()
            .ok_or_else(|| self.fail(arg, format!("\"expected integer, got {}\"", type_name(v))))
    }

    fn non_negative(&self, arg: &str, v: &FieldValue) -> Result<u64, AmqpError> {
        let n = self.int(arg, v)?;
        u64::try_from(n).map_err(|_| self.fail(arg, format!("{{value_negative,{n}}}")))
    }

    fn positive(&self, arg: &str, v: &FieldValue) -> Result<u64, AmqpError> {
        match self.non_negative(arg, v)? {
            0 => Err(self.fail(arg, "{value_zero,0}".into())),
            n => Ok(n),
        }
    }

    fn type_error(&self, arg: &str, v: &FieldValue) -> AmqpError {
        self.fail(arg, format!("{{unacceptable_type,{}}}", type_name(v)))
    }

    /// A queue argument that this queue type does not take.
    fn wrong_type(&self, arg: &str, kind: &str) -> AmqpError {
        AmqpError::precondition(format!(
            "invalid arg '{arg}' for {} of queue type {kind}",
            self.what
        ))
    }
}

/// Flags of the declare that some queue types constrain.
pub struct DeclareFlags {
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
}

/// Queue arguments compared on redeclare, as RabbitMQ does; others (and
/// unknown ones) may differ.
pub const EQUIVALENCE_CHECKED: &[&str] = &[
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-message-ttl",
    "x-overflow",
    "x-queue-mode",
    "x-queue-type",
    "x-single-active-consumer",
    "x-delivery-limit",
    "x-deduplication-window",
    "x-content-based-deduplication",
];

/// The largest TTL RabbitMQ accepts (2^32 - 1 ms).
const MAX_TTL: u64 = u32::MAX as u64;

impl QueueArgs {
    /// Parses and validates. `what` names the queue for error texts
    /// ("queue 'q' in vhost '/'").
    pub fn parse(
        args: &FieldTable,
        what: &str,
        flags: DeclareFlags,
    ) -> Result<QueueArgs, AmqpError> {
        let c = Check { what };
        let mut out = QueueArgs::default();
        let mut stream = false;
        if let Some(v) = args.get("x-queue-type") {
            out.kind = match v.as_str() {
                Some("classic" | "standard") => QueueKind::Standard,
                Some("quorum") => QueueKind::Quorum,
                Some("fifo") => QueueKind::Fifo,
                Some("stream") => {
                    stream = true;
                    QueueKind::Standard
                }
                Some(other) => {
                    return Err(c.fail(
                        "x-queue-type",
                        format!("\"unsupported queue type '{other}'\""),
                    ))
                }
                None => return Err(c.type_error("x-queue-type", &v)),
            };
        }
        if out.kind == QueueKind::Quorum || stream {
            let bad = if !flags.durable {
                Some("non-durable")
            } else if flags.exclusive {
                Some("exclusive-owner")
            } else if flags.auto_delete {
                Some("auto-delete")
            } else {
                None
            };
            if let Some(property) = bad {
                return Err(AmqpError::precondition(format!(
                    "invalid property '{property}' for {what}"
                )));
            }
        }
        if stream {
            return Err(AmqpError::precondition(format!(
                "invalid arg 'x-queue-type' for {what}: stream queues are not supported by Warren"
            )));
        }
        if let Some(v) = args.get("x-message-ttl") {
            let ms = c.non_negative("x-message-ttl", &v)?;
            if ms > MAX_TTL {
                return Err(c.fail("x-message-ttl", format!("{{value_too_large,{ms}}}")));
            }
            out.message_ttl = Some(Duration::from_millis(ms));
        }
        if let Some(v) = args.get("x-expires") {
            let ms = c.positive("x-expires", &v)?;
            if ms > MAX_TTL {
                return Err(c.fail("x-expires", format!("{{value_too_large,{ms}}}")));
            }
            out.expires = Some(Duration::from_millis(ms));
        }
        if let Some(v) = args.get("x-max-length") {
            out.max_length = Some(c.non_negative("x-max-length", &v)?);
        }
        if let Some(v) = args.get("x-max-length-bytes") {
            out.max_length_bytes = Some(c.non_negative("x-max-length-bytes", &v)?);
        }
        if let Some(v) = args.get("x-overflow") {
            out.overflow = match v.as_str() {
                Some("drop-head") => Overflow::DropHead,
                Some("reject-publish") => Overflow::RejectPublish,
                Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
                Some(_) => return Err(c.fail("x-overflow", "invalid_overflow".into())),
                None => return Err(c.type_error("x-overflow", &v)),
            };
        }
        if let Some(v) = args.get("x-queue-mode") {
            out.lazy = match v.as_str() {
                Some("default") => false,
                Some("lazy") => true,
                Some(other) => {
                    return Err(c.fail(
                        "x-queue-mode",
                        format!("\"unsupported queue mode '{other}'\""),
                    ))
                }
                None => return Err(c.type_error("x-queue-mode", &v)),
            };
        }
        if let Some(v) = args.get("x-dead-letter-exchange") {
            let name = v
                .as_str()
                .and_then(|s| ShortStr::try_from(s).ok())
                .ok_or_else(|| {
                    AmqpError::precondition(format!(
                        "invalid type '{}' for arg 'x-dead-letter-exchange' in {what}",
                        type_name(&v)
                    ))
                })?;
            out.dead_letter_exchange = Some(name);
        }
        if let Some(v) = args.get("x-dead-letter-routing-key") {
            let key = v
                .as_str()
                .and_then(|s| ShortStr::try_from(s).ok())
                .ok_or_else(|| c.type_error("x-dead-letter-routing-key", &v))?;
            if out.dead_letter_exchange.is_none() {
                return Err(c.fail(
                    "x-dead-letter-routing-key",
                    "routing_key_but_no_dlx_defined".into(),
                ));
            }
            out.dead_letter_routing_key = Some(key);
        }
        if let Some(v) = args.get("x-max-priority") {
            match out.kind {
                QueueKind::Fifo => {
                    return Err(AmqpError::precondition(format!(
                        "invalid arg 'x-max-priority' for {what}: FIFO queues keep publish order and cannot have priorities"
                    )))
                }
                QueueKind::Quorum => return Err(c.wrong_type("x-max-priority", "rabbit_quorum_queue")),
                QueueKind::Standard => {}
            }
            let n = c.non_negative("x-max-priority", &v)?;
            let p = u8::try_from(n)
                .map_err(|_| c.fail("x-max-priority", format!("{{max_value_exceeded,{n}}}")))?;
            // A maximum of 0 is accepted and means no priorities.
            out.max_priority = (p > 0).then_some(p);
        }
        if let Some(v) = args.get("x-single-active-consumer") {
            out.single_active_consumer = v
                .as_bool()
                .ok_or_else(|| c.type_error("x-single-active-consumer", &v))?;
        }
        if let Some(v) = args.get("x-delivery-limit") {
            if out.kind == QueueKind::Standard {
                return Err(c.wrong_type("x-delivery-limit", "rabbit_classic_queue"));
            }
            out.delivery_limit = Some(c.non_negative("x-delivery-limit", &v)?);
        }
        if out.kind == QueueKind::Fifo {
            if let Some(v) = args.get("x-deduplication-window") {
                // Named in the text by its value, or by its type as RabbitMQ
                // names field types; never in Rust's debug form.
                let ms = match v.as_i64() {
                    Some(n) => u64::try_from(n)
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or(n.to_string()),
                    None => Err(format!("a {}", type_name(&v))),
                };
                let ms = ms.map_err(|got| {
                    c.fail(
                        "x-deduplication-window",
                        format!("must be a positive integer (milliseconds), got {got}"),
                    )
                })?;
                out.dedup_window = Duration::from_millis(ms);
            }
            if let Some(v) = args.get("x-content-based-deduplication") {
                out.content_based_dedup = v
                    .as_bool()
                    .ok_or_else(|| c.type_error("x-content-based-deduplication", &v))?;
            }
        } else {
            for arg in ["x-deduplication-window", "x-content-based-deduplication"] {
                if args.contains_key(arg) {
                    return Err(AmqpError::precondition(format!(
                        "invalid arg '{arg}' for {what}: only FIFO queues (x-queue-type = fifo) deduplicate"
                    )));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(entries: Vec<(&'static str, FieldValue)>) -> Result<QueueArgs, AmqpError> {
        let t: FieldTable = entries
            .into_iter()
            .map(|(k, v)| (ShortStr::from_static(k), v))
            .collect();
        QueueArgs::parse(
            &t,
            "queue 'q' in vhost '/'",
            DeclareFlags {
                durable: true,
                exclusive: false,
                auto_delete: false,
            },
        )
    }

    #[test]
    fn parses_the_usual_arguments() {
        let a = parse(vec![
            ("x-message-ttl", FieldValue::I32(100)),
            ("x-max-length", FieldValue::I64(3)),
            ("x-overflow", FieldValue::LongStr("reject-publish".into())),
            ("x-max-priority", FieldValue::U8(10)),
        ])
        .unwrap_or_default();
        assert_eq!(a.message_ttl, Some(Duration::from_millis(100)));
        assert_eq!(a.max_length, Some(3));
        assert_eq!(a.overflow, Overflow::RejectPublish);
        assert_eq!(a.max_priority, Some(10));
    }

    #[test]
    fn rejects_bad_values_with_406() {
        for bad in [
            vec![("x-message-ttl", FieldValue::I32(-1))],
            vec![("x-message-ttl", FieldValue::LongStr("1".into()))],
            vec![("x-expires", FieldValue::I32(0))],
            vec![("x-max-priority", FieldValue::I32(256))],
            vec![("x-max-priority", FieldValue::I32(-1))],
            vec![("x-overflow", FieldValue::LongStr("bogus".into()))],
            vec![("x-queue-type", FieldValue::LongStr("stream".into()))],
            vec![("x-dead-letter-routing-key", FieldValue::LongStr("k".into()))],
            vec![("x-deduplication-window", FieldValue::I32(10))],
        ] {
            let e = parse(bad).err().map(|e| e.code.code());
            assert_eq!(e, Some(406));
        }
    }

    #[test]
    fn a_bad_deduplication_window_is_named_by_its_value_or_type() {
        let fifo = |v: FieldValue| {
            parse(vec![
                ("x-queue-type", FieldValue::LongStr("fifo".into())),
                ("x-deduplication-window", v),
            ])
            .err()
            .map(|e| e.text)
            .unwrap_or_default()
        };
        let prefix = "invalid arg 'x-deduplication-window' for queue 'q' in vhost '/': must be a positive integer (milliseconds), got";
        assert_eq!(fifo(FieldValue::I32(0)), format!("{prefix} 0"));
        assert_eq!(fifo(FieldValue::I64(-5)), format!("{prefix} -5"));
        assert_eq!(
            fifo(FieldValue::LongStr("10".into())),
            format!("{prefix} a longstr")
        );
        assert_eq!(fifo(FieldValue::F64(1.5)), format!("{prefix} a double"));
        assert!(parse(vec![
            ("x-queue-type", FieldValue::LongStr("fifo".into())),
            ("x-deduplication-window", FieldValue::U32(1000)),
        ])
        .is_ok_and(|a| a.dedup_window == Duration::from_millis(1000)));
    }
}
