//! Shared helpers for the integration tests: start a broker, connect clients.
//!
//! Every test starts its own broker in-process on 127.0.0.1:0. With
//! `WARREN_TEST_URL=amqp://guest:guest@127.0.0.1:5673/%2f` the same tests
//! run against another broker (the reference RabbitMQ) instead, which is how
//! we check that a test asserts what RabbitMQ really does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod features;
pub mod raw;
pub mod scenario;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use lapin::{Channel, Connection, ConnectionProperties};

pub struct TestBroker {
    pub addr: SocketAddr,
    pub url: String,
    broker: Option<warren::Broker>,
}

/// Starts a broker for one test (or points at `WARREN_TEST_URL`).
pub async fn start() -> TestBroker {
    start_with(warren::BrokerConfig::default()).await
}

/// Starts a broker with a given configuration (ignored for an external broker).
pub async fn start_with(config: warren::BrokerConfig) -> TestBroker {
    if let Ok(url) = std::env::var("WARREN_TEST_URL") {
        let hostport = url
            .split('@')
            .nth(1)
            .and_then(|s| s.split('/').next())
            .expect("WARREN_TEST_URL like amqp://guest:guest@127.0.0.1:5673/%2f");
        let addr = hostport.parse().expect("host:port in WARREN_TEST_URL");
        return TestBroker {
            addr,
            url,
            broker: None,
        };
    }
    let broker = warren::Broker::new(config);
    let addr = broker.listen("127.0.0.1:0").await.expect("listen");
    TestBroker {
        addr,
        url: format!("amqp://guest:guest@{addr}/%2f"),
        broker: Some(broker),
    }
}

impl TestBroker {
    /// True when the tests run against the in-process Warren broker.
    pub fn is_warren(&self) -> bool {
        self.broker.is_some()
    }

    pub fn broker(&self) -> Option<&warren::Broker> {
        self.broker.as_ref()
    }

    pub async fn connect(&self) -> Connection {
        Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .expect("connect")
    }

    /// A fresh connection with one open channel.
    pub async fn channel(&self) -> (Connection, Channel) {
        let conn = self.connect().await;
        let ch = conn.create_channel().await.expect("channel");
        (conn, ch)
    }

    pub async fn shutdown(self) {
        if let Some(b) = self.broker {
            b.shutdown().await;
        }
    }
}

/// A name no other test uses (tests may share an external broker).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}
