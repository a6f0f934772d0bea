//! The in-process API: connections and channels on a [`crate::Broker`]
//! without a socket or any encoding.
//!
//! Calls go straight into the same core that serves TCP clients, so the
//! semantics and the errors (an [`AmqpError`] with RabbitMQ's reply code)
//! are the same. What the broker sends back — replies, deliveries,
//! confirms — comes through the connection's outbox like for TCP, and a
//! small router task hands each item to whoever waits for it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), warren::AmqpError> {
//! use futures::StreamExt;
//! use warren::{Broker, BrokerConfig};
//! use warren::embed::{ConsumeOptions, QueueDeclareOptions};
//!
//! let broker = Broker::new(BrokerConfig::default());
//! let conn = broker.connect().await?;
//! let ch = conn.open_channel().await?;
//! ch.queue_declare("jobs", QueueDeclareOptions::default(), Default::default()).await?;
//! ch.basic_publish("", "jobs", Default::default(), Default::default(), "hello".into()).await?;
//! let mut consumer = ch.basic_consume("jobs", ConsumeOptions::default()).await?;
//! if let Some(delivery) = consumer.next().await {
//!     assert_eq!(&delivery.body[..], b"hello");
//!     delivery.ack().await?;
//! }
//! # Ok(()) }
//! ```

mod channel;
mod connection;
mod router;

pub use channel::{
    Channel, Confirmation, ConsumeOptions, Consumer, Delivery, ExchangeDeclareOptions,
    PublishOptions, QueueDeclareOptions, QueueDeleteOptions, QueueInfo, Returned,
};
pub use connection::Connection;

use crate::error::AmqpError;
use warren_protocol::ShortStr;

/// Converts a name for the wire types; names over 255 bytes are refused as
/// RabbitMQ's parser would refuse them.
pub(crate) fn short(s: &str) -> Result<ShortStr, AmqpError> {
    ShortStr::try_from(s)
        .map_err(|_| AmqpError::syntax_error(format!("name longer than 255 bytes: {s:.40}…")))
}
