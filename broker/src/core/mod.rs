//! The broker core: vhosts, exchanges, queues, consumers and the per-connection
//! session that turns AMQP methods into operations on them. No I/O here.

pub mod channel;
pub mod dead_letter;
pub mod exchange;
pub mod fifo;
pub mod headers;
pub mod link;
pub mod message;
pub mod names;
pub mod outbox;
pub mod queue;
pub mod queue_args;
pub mod ready;
pub mod session;
pub mod topic;
pub mod vhost;
