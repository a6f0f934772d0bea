/// Configuration of a broker.
#[derive(Debug, Clone, Default)]
pub struct BrokerConfig {}
