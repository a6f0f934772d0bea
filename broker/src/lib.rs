//! Warren: an AMQP 0-9-1 broker that a Rust service can embed.
//!
//! Build a [`Broker`] from a [`BrokerConfig`], then [`Broker::listen`] to
//! serve AMQP clients (pika, lapin, amqplib, …) over TCP, and/or
//! [`Broker::connect`] to publish and consume from the service's own code
//! through the in-process API ([`embed`]): the same operations and errors
//! as an AMQP channel, with no socket and no encoding. Both kinds of
//! clients see the same exchanges and queues.
//!
//! The broker runs on the caller's tokio runtime and keeps no global
//! state: several brokers can live in one process.
//!
//! ```
//! use futures::StreamExt;
//! use warren::embed::{ConsumeOptions, QueueDeclareOptions};
//! use warren::{Broker, BrokerConfig};
//!
//! # async fn service() -> Result<(), Box<dyn std::error::Error>> {
//! let broker = Broker::new(BrokerConfig::default());
//! // Also serve pika/lapin clients (port 0: any free port).
//! let addr = broker.listen("127.0.0.1:0").await?;
//! println!("AMQP on {addr}");
//!
//! let conn = broker.connect().await?;
//! let ch = conn.open_channel().await?;
//! ch.queue_declare("tasks", QueueDeclareOptions::default(), Default::default())
//!     .await?;
//! let mut tasks = ch
//!     .basic_consume("tasks", ConsumeOptions::default())
//!     .await?;
//!
//! ch.basic_publish("", "tasks", Default::default(), Default::default(), "resize 42".into())
//!     .await?;
//! let task = tasks.next().await.ok_or("consumer ended")?;
//! assert_eq!(&task.body()[..], b"resize 42");
//! task.ack().await?;
//!
//! // Closes every connection (TCP clients get 320 CONNECTION_FORCED) and
//! // releases the port.
//! broker.shutdown().await;
//! # Ok(()) }
//! # tokio::runtime::Runtime::new()?.block_on(service())
//! # .map_err(|e| std::io::Error::other(e.to_string()))?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod alarm;
mod broker;
mod config;
// The broker's core is public only for the micro-benchmarks
// (`benches/benches/core.rs`), behind the `internals` feature; it is no
// stable API (so the lints for public APIs do not apply).
#[cfg(feature = "internals")]
#[doc(hidden)]
#[allow(clippy::len_without_is_empty)]
pub mod core;
#[cfg(not(feature = "internals"))]
mod core;
pub mod embed;
mod error;
mod server;
mod store;

pub use alarm::parse_memory_limit;
pub use broker::Broker;
pub use config::{BrokerConfig, LimitsConfig, UserConfig};
pub use error::AmqpError;
pub use store::StorageConfig;
pub use warren_persistence::{FsyncPolicy, StoreStats};
