//! Matching for the headers exchange.

use warren_protocol::{FieldTable, FieldValue, ShortStr};

use crate::error::AmqpError;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    All,
    Any,
}

/// A headers-exchange binding's arguments, read once when it is bound.
/// `x-match` is `all` (default), `any`, `all-with-x` or `any-with-x`;
/// other `x-` keys are ignored unless the mode ends in `-with-x`. A void
/// binding value only requires the header to be present.
#[derive(Clone)]
pub struct HeadersPattern {
    mode: Mode,
    /// The arguments that take part, in the binding's order.
    wanted: Vec<(ShortStr, FieldValue)>,
}

impl HeadersPattern {
    pub fn new(binding: &FieldTable) -> HeadersPattern {
        let (mode, with_x) = match binding.get("x-match").as_ref().and_then(FieldValue::as_str) {
            Some("any") => (Mode::Any, false),
            Some("any-with-x") => (Mode::Any, true),
            Some("all-with-x") => (Mode::All, true),
            _ => (Mode::All, false),
        };
        let wanted = binding
            .iter()
            .filter(|(key, _)| {
                let k = key.as_bytes();
                k != b"x-match" && (with_x || !k.starts_with(b"x-"))
            })
            .collect();
        HeadersPattern { mode, wanted }
    }

    /// Whether a message's headers match.
    pub fn matches(&self, headers: Option<&FieldTable>) -> bool {
        for (key, want) in &self.wanted {
            let have = headers.and_then(|h| key.as_str().and_then(|ks| h.get(ks)));
            let ok = match (want, have) {
                (_, None) => false,
                (FieldValue::Void, Some(_)) => true,
                (w, Some(h)) => same_value(w, &h),
            };
            match self.mode {
                Mode::All if !ok => return false,
                Mode::Any if ok => return true,
                _ => {}
            }
        }
        match self.mode {
            // `all` with nothing to compare matches everything.
            Mode::All => true,
            Mode::Any => false,
        }
    }
}

/// Checks a headers-exchange binding's `x-match` as RabbitMQ does at bind time.
pub fn validate_binding(arguments: &FieldTable) -> Result<(), AmqpError> {
    match arguments.get("x-match") {
        None => Ok(()),
        Some(v) => match v.as_str() {
            Some("all" | "any" | "all-with-x" | "any-with-x") => Ok(()),
            _ => Err(AmqpError::precondition(format!(
                "Invalid x-match field value {}; expected all, any, all-with-x, or any-with-x",
                erlang_form(&v)
            ))),
        },
    }
}

/// Header values match as RabbitMQ compares them: numbers by value whatever
/// their type (2, 2 as a long and 2.0 are equal), everything else exactly.
fn same_value(a: &FieldValue, b: &FieldValue) -> bool {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x == y,
        (None, None) => a == b,
        _ => false,
    }
}

fn number(v: &FieldValue) -> Option<f64> {
    match v {
        FieldValue::F32(f) => Some(f64::from(*f)),
        FieldValue::F64(f) => Some(*f),
        FieldValue::Bool(_) => None,
        v => v.as_i64().map(|n| n as f64),
    }
}

/// How RabbitMQ prints a value in this error text (Erlang terms).
fn erlang_form(v: &FieldValue) -> String {
    match v {
        FieldValue::LongStr(s) => format!("<<\"{}\">>", String::from_utf8_lossy(s.as_bytes())),
        v => v
            .as_i64()
            .map_or_else(|| format!("{v:?}"), |n| n.to_string()),
    }
}
