//! Queue features RabbitMQ users rely on (issue 4): TTL and `x-expires`,
//! length limits and overflow modes, dead-lettering with `x-death`,
//! priorities, single active consumer and consumer priorities, queue types
//! (quorum with `x-delivery-limit`, stream), direct reply-to, CC/BCC routing
//! and argument validation.
//!
//! Each test runs against Warren in-process, or against the reference
//! RabbitMQ 3.10 with
//! `WARREN_TEST_URL=amqp://guest:guest@127.0.0.1:5673/%2f`; every assertion
//! here holds there. Time-based tests use short TTLs and await the event
//! they cause (a dead letter arriving, a 404), each wait bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod arguments;
mod cc_bcc;
mod consumers;
mod dead_letter;
mod length;
mod priority;
mod queue_types;
mod reply_to;
mod ttl;
