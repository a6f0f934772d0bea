//! Warren: an AMQP 0-9-1 broker that a Rust service can embed.
//!
//! Build a [`Broker`] from a [`BrokerConfig`], then [`Broker::listen`] to
//! serve AMQP clients (pika, lapin, amqplib, …) over TCP.

mod broker;
mod config;
mod core;
pub mod embed;
mod error;
mod server;
mod store;

pub use broker::Broker;
pub use config::{BrokerConfig, LimitsConfig, UserConfig};
pub use error::AmqpError;
pub use store::StorageConfig;
pub use warren_persistence::FsyncPolicy;
