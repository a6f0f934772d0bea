//! The AMQP 0-9-1 wire format as RabbitMQ speaks it: the protocol header,
//! frames, every method of every class, the content header's properties,
//! and field tables.
//!
//! Decoding is zero-copy: a complete frame is split off the read buffer,
//! and strings, tables and body payloads are `Bytes` slices of it. Field
//! tables stay in wire form, validated at decode and read lazily. Encoders
//! append to a `BytesMut`.
//!
//! ```
//! use bytes::BytesMut;
//! use warren_protocol::*;
//!
//! let mut buf = BytesMut::new();
//! let publish = BasicPublish { exchange: ShortStr::from_static("amq.direct"), ..Default::default() };
//! encode_method_frame(&mut buf, 1, &Method::BasicPublish(publish.clone()));
//! let frame = decode_frame(&mut buf, 0).unwrap();
//! assert_eq!(frame, Some(Frame::Method { channel: 1, method: Method::BasicPublish(publish) }));
//! ```

mod error;
mod frame;
mod method;
mod properties;
mod reply;
mod table;
mod types;
mod wire;

pub use error::DecodeError;
pub use frame::*;
pub use method::*;
pub use properties::{BasicProperties, WireProperties};
pub use reply::ReplyCode;
pub use table::{FieldArray, FieldTable, FieldValue, MAX_NESTING_DEPTH};
pub use types::{LengthError, LongStr, ShortStr};
