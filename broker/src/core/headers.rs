//! Matching for the headers exchange.

use warren_protocol::{FieldTable, FieldValue};

use crate::error::AmqpError;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    All,
    Any,
}

/// Whether a message's headers match a binding's arguments. `x-match` is
/// `all` (default), `any`, `all-with-x` or `any-with-x`; other `x-` keys
/// are ignored unless the mode ends in `-with-x`. A void binding value only
/// requires the header to be present.
pub fn headers_match(binding: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let (mode, with_x) = match binding.get("x-match").as_ref().and_then(FieldValue::as_str) {
        Some("any") => (Mode::Any, false),
        Some("any-with-x") => (Mode::Any, true),
        Some("all-with-x") => (Mode::All, true),
        _ => (Mode::All, false),
    };
    for (key, want) in binding.iter() {
        let k = key.as_bytes();
        if k == b"x-match" || (!with_x && k.starts_with(b"x-")) {
            continue;
        }
        let have = headers.and_then(|h| key.as_str().and_then(|ks| h.get(ks)));
        let ok = match (&want, have) {
            (_, None) => false,
            (FieldValue::Void, Some(_)) => true,
            (w, Some(h)) => *w == h,
        };
        match mode {
            Mode::All if !ok => return false,
            Mode::Any if ok => return true,
            _ => {}
        }
    }
    match mode {
        // `all` with nothing to compare matches everything.
        Mode::All => true,
        Mode::Any => false,
    }
}

/// Checks a headers-exchange binding's `x-match` as RabbitMQ does at bind time.
pub fn validate_binding(arguments: &FieldTable) -> Result<(), AmqpError> {
    match arguments.get("x-match") {
        None => Ok(()),
        Some(v) => match v.as_str() {
            Some("all" | "any" | "all-with-x" | "any-with-x") => Ok(()),
            _ => Err(AmqpError::precondition(format!(
                "Invalid x-match field value {v:?}; expected all, any, all-with-x, or any-with-x"
            ))),
        },
    }
}
