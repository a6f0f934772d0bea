use std::net::SocketAddr;

use crate::config::BrokerConfig;

/// A running broker.
#[derive(Clone)]
pub struct Broker {}

impl Broker {
    pub fn new(_config: BrokerConfig) -> Broker {
        Broker {}
    }

    pub async fn listen(&self, _addr: &str) -> std::io::Result<SocketAddr> {
        todo!()
    }

    pub async fn shutdown(&self) {}
}
