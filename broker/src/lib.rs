//! Warren: an AMQP 0-9-1 broker that a Rust service can embed.

mod broker;
mod config;

pub use broker::Broker;
pub use config::BrokerConfig;
