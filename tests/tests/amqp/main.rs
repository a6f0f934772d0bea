//! The AMQP 0-9-1 methods through lapin (issue 3): exchanges, routing,
//! queues, basic publish/get/ack, consumers, QoS, confirms, transactions
//! and the errors a client can cause.
//!
//! Each test runs against Warren in-process, or against the reference
//! RabbitMQ 3.10 with
//! `WARREN_TEST_URL=amqp://guest:guest@127.0.0.1:5673/%2f`; every assertion
//! here holds there. Error tests assert the exact reply code and whether
//! the channel or the whole connection was closed. Every wait is bounded;
//! no test sleeps.
//!
//! One test binary, so that lapin is linked once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod basic;
mod confirm;
mod consume;
mod errors;
mod exchange;
mod qos;
mod queue;
mod routing;
mod support;
mod tx;
