//! The broker core's pieces, without sockets or the codec: routing a
//! message through each kind of exchange, and a queue's push → deliver →
//! ack cycle.
//!
//! - `route/direct/100`: a direct exchange with 100 bindings (distinct
//!   keys); one key is looked up.
//! - `route/fanout/10`: a fanout exchange bound to 10 queues.
//! - `route/topic/100`: a topic exchange with 100 patterns (`*` and `#`),
//!   a four-word key that matches 2 of them.
//! - `route/headers/10`: a headers exchange with 10 `x-match = all`
//!   bindings of 2 headers each; the message has 4 headers and matches 1.
//! - `queue/push-deliver/no-ack`: 100 messages pushed to a queue with a
//!   no-ack consumer (each is delivered to the consumer's outbox at once),
//!   then the outbox is drained.
//! - `queue/push-deliver-ack/manual`: the same with a manual-ack consumer,
//!   and every delivery acked one by one (as a channel does on basic.ack).
//! - `queue/push-purge/no-consumer`: 100 messages pushed to a queue with no
//!   consumer, then purged.
//!
//! Throughput is per message (per routed message for `route/*`).
//!
//! `cargo bench -p warren-benches --bench core`
// Setup failures in a benchmark are bugs to see at once.
#![allow(clippy::expect_used)]

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use warren::core::exchange::{Destination, Exchange, ExchangeKind, ExchangeOptions, RouteScratch};
use warren::core::link::{ChannelLink, ConnectionId, ConnectionLink, Consumer};
use warren::core::message::Message;
use warren::core::outbox::Outbox;
use warren::core::queue::{Queue, QueueOptions};
use warren::core::queue_args::QueueArgs;
use warren_protocol::{FieldTable, FieldValue, LongStr, ShortStr};

/// Messages per iteration of the queue benchmarks.
const BATCH: u64 = 100;

fn short(s: &str) -> ShortStr {
    ShortStr::try_from(s).expect("short string")
}

fn queue(name: &str) -> Arc<Queue> {
    Queue::new(
        short(name),
        "/".to_string(),
        QueueOptions {
            durable: false,
            exclusive_owner: None,
            auto_delete: false,
            arguments: FieldTable::new(),
        },
        QueueArgs::default(),
        None,
        None,
        Weak::new(),
    )
}

fn exchange(kind: ExchangeKind) -> Arc<Exchange> {
    Exchange::new(
        short("x"),
        ExchangeOptions {
            kind,
            durable: false,
            auto_delete: false,
            internal: false,
            arguments: FieldTable::new(),
        },
        None,
    )
}

fn bind(x: &Exchange, q: &Arc<Queue>, key: &str, args: FieldTable) {
    x.bind(Destination::Queue(q.clone()), short(key), args, || None);
}

fn string(s: &str) -> FieldValue {
    FieldValue::LongStr(LongStr::from(s.as_bytes().to_vec()))
}

/// Benchmarks routing one message through `x`, checking where it went.
fn bench_route(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: BenchmarkId,
    x: &Arc<Exchange>,
    key: &ShortStr,
    headers: Option<&FieldTable>,
    expect: usize,
) {
    let mut scratch = RouteScratch::default();
    group.bench_function(id, |b| {
        b.iter(|| {
            scratch.queues.clear();
            x.route(black_box(key), headers, &mut scratch);
            assert_eq!(scratch.queues.len(), expect);
        })
    });
}

fn route(c: &mut Criterion) {
    let mut group = c.benchmark_group("route");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(3));

    let direct = exchange(ExchangeKind::Direct);
    for i in 0..100 {
        bind(
            &direct,
            &queue(&format!("q{i}")),
            &format!("key.{i}"),
            FieldTable::new(),
        );
    }
    let id = BenchmarkId::new("direct", 100);
    bench_route(&mut group, id, &direct, &short("key.42"), None, 1);

    let fanout = exchange(ExchangeKind::Fanout);
    for i in 0..10 {
        bind(&fanout, &queue(&format!("q{i}")), "", FieldTable::new());
    }
    let empty = ShortStr::default();
    bench_route(
        &mut group,
        BenchmarkId::new("fanout", 10),
        &fanout,
        &empty,
        None,
        10,
    );

    let topic = exchange(ExchangeKind::Topic);
    for i in 0..100 {
        let pattern = match i % 4 {
            0 => format!("stock.{i}.*"),
            1 => format!("*.{i}.nyse.#"),
            2 => format!("#.region{i}"),
            _ => format!("news.*.{i}.#"),
        };
        bind(
            &topic,
            &queue(&format!("q{i}")),
            &pattern,
            FieldTable::new(),
        );
    }
    // Matches `stock.12.*`? no (4 words); `*.13.nyse.#` yes; `#.region14`? no.
    bind(&topic, &queue("all"), "#", FieldTable::new());
    let key = short("stock.13.nyse.daily");
    bench_route(
        &mut group,
        BenchmarkId::new("topic", 100),
        &topic,
        &key,
        None,
        2,
    );

    let headers = exchange(ExchangeKind::Headers);
    for i in 0..10 {
        let args = FieldTable::from_entries([
            (short("x-match"), string("all")),
            (short("format"), string("pdf")),
            (short("kind"), string(&format!("k{i}"))),
        ]);
        bind(&headers, &queue(&format!("q{i}")), "", args);
    }
    let message_headers = FieldTable::from_entries([
        (short("format"), string("pdf")),
        (short("kind"), string("k7")),
        (short("lang"), string("en")),
        (short("size"), FieldValue::I64(1024)),
    ]);
    let id = BenchmarkId::new("headers", 10);
    bench_route(&mut group, id, &headers, &empty, Some(&message_headers), 1);
    group.finish();
}

fn message() -> Arc<Message> {
    Arc::new(Message {
        exchange: ShortStr::default(),
        routing_key: short("q"),
        properties: Default::default(),
        body: Bytes::from_static(b"0123456789abcdef"),
    })
}

/// A consumer on `q` whose deliveries land in the returned outbox.
fn consumer(q: &Arc<Queue>, no_ack: bool) -> (Arc<ConnectionLink>, Arc<ChannelLink>) {
    let conn = Arc::new(ConnectionLink {
        id: ConnectionId(1),
        outbox: Outbox::new(usize::MAX / 2),
        consumer_cancel_notify: AtomicBool::new(false),
    });
    let channel = Arc::new(ChannelLink::new(1, conn.clone()));
    let c = Consumer::new(short("c"), channel.clone(), q.clone(), no_ack, false, 0, 0);
    q.add_consumer(Arc::new(c), || {})
        .map_err(|e| e.to_string())
        .expect("consumer");
    (conn, channel)
}

/// Takes what the consumer was sent, as the connection's writer does.
fn drain(conn: &ConnectionLink, batch: &mut VecDeque<warren::core::outbox::Outbound>) -> usize {
    let cost = conn.outbox.drain_into(batch);
    let n = batch.len();
    conn.outbox.written(cost);
    batch.clear();
    n
}

fn queue_cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue");
    group.throughput(Throughput::Elements(BATCH));
    group.measurement_time(Duration::from_secs(3));
    let msg = message();
    let mut batch = VecDeque::new();

    let q = queue("no-ack");
    let (conn, _channel) = consumer(&q, true);
    group.bench_function("push-deliver/no-ack", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                q.push(msg.clone(), None);
            }
            assert_eq!(drain(&conn, &mut batch), BATCH as usize);
        })
    });

    let q = queue("manual");
    let (conn, channel) = consumer(&q, false);
    let mut next_tag = 1;
    let mut taken = Vec::new();
    group.bench_function("push-deliver-ack/manual", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                q.push(msg.clone(), None);
            }
            assert_eq!(drain(&conn, &mut batch), BATCH as usize);
            for _ in 0..BATCH {
                assert!(channel.take_unacked_into(next_tag, false, &mut taken));
                next_tag += 1;
                for u in taken.drain(..) {
                    u.queue().settled([&u.entry]);
                    u.queue().discard([&u.entry]);
                }
            }
        })
    });

    let q = queue("idle");
    group.bench_function("push-purge/no-consumer", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                q.push(msg.clone(), None);
            }
            assert_eq!(q.purge(), BATCH as u32);
        })
    });
    group.finish();
}

criterion_group!(benches, route, queue_cycle);
criterion_main!(benches);
