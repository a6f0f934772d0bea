//! Broker configuration.

use std::time::Duration;

/// A user that may log in, and the vhosts it may open.
#[derive(Debug, Clone)]
pub struct UserConfig {
    pub name: String,
    pub password: String,
}

/// Limits the broker enforces on every connection.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Highest channel number a client may open (negotiated down in tune-ok).
    pub channel_max: u16,
    /// Largest frame, in bytes, including the 8 bytes of frame overhead.
    pub frame_max: u32,
    /// Heartbeat interval proposed to clients; 0 disables heartbeats.
    pub heartbeat: Duration,
    /// Largest message body accepted (RabbitMQ's default is 128 MiB).
    pub max_message_size: u64,
    /// Most connections served at once; further ones are refused.
    pub max_connections: usize,
    /// Bytes queued for one connection's socket above which the broker stops
    /// delivering to it until the client reads (backpressure).
    pub outbox_high_water: usize,
    /// Resident memory, in bytes, above which publishers are blocked (the
    /// memory alarm, RabbitMQ's high watermark). `None`: no limit.
    pub memory_limit: Option<u64>,
    /// Share of `memory_limit` above which queues with a long backlog move
    /// transient messages to the log (with a data directory), as
    /// RabbitMQ's `vm_memory_high_watermark_paging_ratio` (0.5).
    pub memory_paging_ratio: f64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat: Duration::from_secs(60),
            max_message_size: 128 * 1024 * 1024,
            max_connections: 65_536,
            outbox_high_water: 4 * 1024 * 1024,
            memory_limit: None,
            memory_paging_ratio: 0.5,
        }
    }
}

/// Configuration of a [`crate::Broker`].
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub users: Vec<UserConfig>,
    /// Virtual hosts that exist at start; `/` by default.
    pub vhosts: Vec<String>,
    pub limits: LimitsConfig,
    /// Durable storage, used by [`crate::Broker::open`].
    pub storage: crate::StorageConfig,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            users: vec![UserConfig {
                name: "guest".into(),
                password: "guest".into(),
            }],
            vhosts: vec!["/".into()],
            limits: LimitsConfig::default(),
            storage: crate::StorageConfig::default(),
        }
    }
}
