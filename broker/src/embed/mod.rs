//! The in-process API: connections and channels on a [`crate::Broker`]
//! without a socket or any encoding.
//!
//! Calls go straight into the same core that serves TCP clients (the same
//! `Session` per connection, the same channels, exchanges and queues), so
//! the semantics and the errors — an [`AmqpError`] carrying RabbitMQ's
//! reply code and text — are the same. What the broker sends back
//! (replies, deliveries, confirms) comes through the connection's outbox as
//! it does for TCP, and a small router task per connection hands each item
//! to whoever waits for it: the caller of an RPC, a [`Consumer`] stream, a
//! [`Confirmation`].
//!
//! Bodies travel as [`bytes::Bytes`]: a consumer gets the very bytes the
//! publisher passed in, and a [`Delivery`] shares the published message
//! (body, properties, routing) rather than copying it.
//!
//! Messages published in-process reach TCP consumers and the other way
//! round: they are the same queues.
//!
//! ```
//! # async fn demo() -> Result<(), warren::AmqpError> {
//! use futures::StreamExt;
//! use warren::embed::{ConsumeOptions, QueueDeclareOptions};
//! use warren::{Broker, BrokerConfig};
//!
//! let broker = Broker::new(BrokerConfig::default());
//! let conn = broker.connect().await?;
//! let ch = conn.open_channel().await?;
//! ch.queue_declare("jobs", QueueDeclareOptions::default(), Default::default())
//!     .await?;
//! ch.basic_publish("", "jobs", Default::default(), Default::default(), "hello".into())
//!     .await?;
//! let mut consumer = ch.basic_consume("jobs", ConsumeOptions::default()).await?;
//! if let Some(delivery) = consumer.next().await {
//!     assert_eq!(&delivery.body()[..], b"hello");
//!     delivery.ack().await?;
//! }
//! broker.shutdown().await;
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! Errors follow AMQP: a channel-level error (404 NOT_FOUND, 406
//! PRECONDITION_FAILED, 405 RESOURCE_LOCKED, 403 ACCESS_REFUSED, …) closes
//! the channel — the failing call returns it, and every later call on that
//! channel returns it again — while the connection and its other channels
//! go on. A connection-level error closes the connection.

mod channel;
mod connection;
mod consumer;
mod router;

pub use channel::{
    Channel, ConsumeOptions, ExchangeDeclareOptions, Publish, PublishBatch, PublishOptions,
    QueueDeclareOptions, QueueDeleteOptions, QueueInfo,
};
pub use connection::Connection;
pub use consumer::{ConfirmOutcome, Confirmation, Consumer, Delivery, Returned};
pub use warren_protocol::{BasicProperties, FieldTable, FieldValue, LongStr, ReplyCode, ShortStr};

use crate::error::AmqpError;

/// Converts a name for the wire types; names over 255 bytes are refused as
/// RabbitMQ's parser would refuse them.
pub(crate) fn short(s: &str) -> Result<ShortStr, AmqpError> {
    ShortStr::try_from(s)
        .map_err(|_| AmqpError::syntax_error(format!("name longer than 255 bytes: {s:.40}…")))
}
