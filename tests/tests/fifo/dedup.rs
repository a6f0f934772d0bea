//! Deduplication: by header, message-id or body hash, within and after the
//! window, with confirms and transactions, across groups, after
//! consumption, and across a restart of a durable queue (whose log holds
//! ids by a fixed, documented hash).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::Confirmation;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use crate::*;

fn dedup_header(id: &str) -> BasicProperties {
    BasicProperties::default().with_headers(table(&[("x-deduplication-id", s(id))]))
}

fn with_message_id(id: &str) -> BasicProperties {
    BasicProperties::default().with_message_id(id.into())
}

/// Publishes and returns the broker's confirm (the channel is in confirm mode).
async fn confirmed(ch: &Channel, q: &str, body: &str, props: BasicProperties) -> Confirmation {
    publish_opts(ch, q, body, props, BasicPublishOptions::default()).await
}

async fn publish_opts(
    ch: &Channel,
    q: &str,
    body: &str,
    props: BasicProperties,
    opts: BasicPublishOptions,
) -> Confirmation {
    let c = within(
        "basic.publish",
        ch.basic_publish("".into(), q.into(), opts, body.as_bytes(), props),
    )
    .await
    .expect("publish");
    within("confirm", c).await.expect("confirm")
}

/// Drains `q` with basic.get (no ack) and returns the bodies.
async fn drain(ch: &Channel, q: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(d) = get(ch, q, true).await {
        out.push(text(&d));
    }
    out
}

async fn confirm_channel(b: &warren_tests::TestBroker) -> (Connection, Channel) {
    let (conn, ch) = b.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    (conn, ch)
}

#[tokio::test]
async fn duplicates_by_header_are_dropped_within_the_window_and_still_confirmed() {
    let Some(b) = warren().await else { return };
    let (_conn, ch) = confirm_channel(&b).await;
    let q = "dedup-header";
    declare_fifo(&ch, q, &[]).await;
    for body in ["first", "second", "third"] {
        let c = confirmed(&ch, q, body, dedup_header("order-1")).await;
        assert_eq!(c, Confirmation::Ack(None), "a duplicate is still acked");
    }
    assert_eq!(
        confirmed(&ch, q, "other", dedup_header("order-2")).await,
        Confirmation::Ack(None)
    );
    // A mandatory duplicate counts as routed: acked, not returned.
    let c = publish_opts(
        &ch,
        q,
        "again",
        dedup_header("order-1"),
        BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(c, Confirmation::Ack(None));
    assert_eq!(drain(&ch, q).await, ["first", "other"]);
}

#[tokio::test]
async fn duplicates_by_message_id_are_dropped_and_the_header_comes_first() {
    let Some(b) = warren().await else { return };
    let (_conn, ch) = confirm_channel(&b).await;
    let q = "dedup-message-id";
    declare_fifo(&ch, q, &[]).await;
    confirmed(&ch, q, "a", with_message_id("m-1")).await;
    confirmed(&ch, q, "a-dup", with_message_id("m-1")).await;
    confirmed(&ch, q, "b", with_message_id("m-2")).await;
    // Same message-id, but an explicit x-deduplication-id wins.
    let props = with_message_id("m-1").with_headers(table(&[("x-deduplication-id", s("d-9"))]));
    confirmed(&ch, q, "c", props).await;
    // A message-id equal to an earlier header id is the same id.
    confirmed(&ch, q, "d-dup", with_message_id("d-9")).await;
    // Without any id (and no content-based dedup) nothing is deduplicated.
    confirmed(&ch, q, "same", BasicProperties::default()).await;
    confirmed(&ch, q, "same", BasicProperties::default()).await;
    assert_eq!(drain(&ch, q).await, ["a", "b", "c", "same", "same"]);
}

#[tokio::test]
async fn content_based_deduplication_hashes_the_body_only_when_enabled() {
    let Some(b) = warren().await else { return };
    let (_conn, ch) = confirm_channel(&b).await;
    let q = "dedup-body";
    declare_fifo(
        &ch,
        q,
        &[("x-content-based-deduplication", AMQPValue::Boolean(true))],
    )
    .await;
    for body in ["x", "y", "x", "x", "z", "y"] {
        assert_eq!(
            confirmed(&ch, q, body, BasicProperties::default()).await,
            Confirmation::Ack(None)
        );
    }
    // An explicit id takes precedence over the body hash.
    confirmed(&ch, q, "x", with_message_id("explicit")).await;
    assert_eq!(drain(&ch, q).await, ["x", "y", "z", "x"]);
    let off = "dedup-body-off";
    declare_fifo(
        &ch,
        off,
        &[("x-content-based-deduplication", AMQPValue::Boolean(false))],
    )
    .await;
    confirmed(&ch, off, "x", BasicProperties::default()).await;
    confirmed(&ch, off, "x", BasicProperties::default()).await;
    assert_eq!(drain(&ch, off).await, ["x", "x"]);
}

#[tokio::test]
async fn an_id_is_accepted_again_after_the_window() {
    let Some(b) = warren().await else { return };
    let (_conn, ch) = confirm_channel(&b).await;
    let q = "dedup-window";
    let window = Duration::from_millis(200);
    declare_fifo(
        &ch,
        q,
        &[("x-deduplication-window", AMQPValue::LongInt(200))],
    )
    .await;
    let start = Instant::now();
    confirmed(&ch, q, "1", with_message_id("w")).await;
    confirmed(&ch, q, "dup", with_message_id("w")).await;
    assert_eq!(ready(&ch, q).await, 1);
    // Republish until accepted (each dropped attempt does not extend the window).
    let deadline = start + WAIT;
    loop {
        confirmed(&ch, q, "2", with_message_id("w")).await;
        if ready(&ch, q).await == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the id was never forgotten");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        start.elapsed() >= window,
        "accepted again after {:?}, before the {window:?} window",
        start.elapsed()
    );
    assert_eq!(drain(&ch, q).await, ["1", "2"]);
}

#[tokio::test]
async fn deduplication_is_per_queue_across_groups_and_outlives_consumption() {
    let Some(b) = warren().await else { return };
    let (_conn, ch) = confirm_channel(&b).await;
    let q = "dedup-groups";
    declare_fifo(&ch, q, &[]).await;
    let in_group_with_id = |g: &str, id: &str| in_group(g).with_message_id(id.into());
    confirmed(&ch, q, "a", in_group_with_id("g1", "id-1")).await;
    confirmed(&ch, q, "a-in-g2", in_group_with_id("g2", "id-1")).await;
    confirmed(&ch, q, "b", in_group_with_id("g2", "id-2")).await;
    assert_eq!(drain(&ch, q).await, ["a", "b"]);
    // Consumed (and acked) messages' ids stay remembered for the window.
    let d = {
        confirmed(&ch, q, "c", with_message_id("id-3")).await;
        get(&ch, q, false).await.unwrap()
    };
    ack(&d).await;
    confirmed(&ch, q, "c-again", with_message_id("id-3")).await;
    confirmed(&ch, q, "a-again", with_message_id("id-1")).await;
    assert_eq!(ready(&ch, q).await, 0);
    // Another FIFO queue has its own window: the same id is new there.
    let other = "dedup-groups-other";
    declare_fifo(&ch, other, &[]).await;
    confirmed(&ch, other, "a", with_message_id("id-1")).await;
    assert_eq!(drain(&ch, other).await, ["a"]);
}

#[tokio::test]
async fn a_transaction_drops_duplicates_at_commit() {
    let Some(b) = warren().await else { return };
    let (_conn, ch) = b.channel().await;
    let q = "dedup-tx";
    declare_fifo(&ch, q, &[]).await;
    ch.tx_select().await.unwrap();
    for body in ["1", "1-dup"] {
        ch.basic_publish(
            "".into(),
            q.into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            with_message_id("t"),
        )
        .await
        .unwrap();
    }
    ch.tx_commit().await.unwrap();
    // A rolled-back publish is never accepted, so its id stays free.
    ch.basic_publish(
        "".into(),
        q.into(),
        BasicPublishOptions::default(),
        b"2",
        with_message_id("u"),
    )
    .await
    .unwrap();
    ch.tx_rollback().await.unwrap();
    ch.basic_publish(
        "".into(),
        q.into(),
        BasicPublishOptions::default(),
        b"3",
        with_message_id("u"),
    )
    .await
    .unwrap();
    ch.tx_commit().await.unwrap();
    let got: Vec<String> = {
        let mut v = Vec::new();
        while let Some(d) = get(&ch, q, true).await {
            v.push(text(&d));
        }
        v
    };
    assert_eq!(got, ["1", "3"]);
}

#[tokio::test]
async fn an_id_refused_by_a_length_limit_is_not_remembered() {
    let Some(b) = warren().await else { return };
    let (_conn, ch) = confirm_channel(&b).await;
    let q = "dedup-reject-publish";
    declare_fifo(
        &ch,
        q,
        &[
            ("x-max-length", AMQPValue::LongInt(1)),
            ("x-overflow", s("reject-publish")),
        ],
    )
    .await;
    assert!(confirmed(&ch, q, "1", with_message_id("a")).await.is_ack());
    // The queue is full: refused (nacked), so the publisher will retry...
    assert!(confirmed(&ch, q, "2", with_message_id("b")).await.is_nack());
    assert_eq!(drain(&ch, q).await, ["1"]);
    // ...and the retry must be accepted, not dropped as a duplicate.
    assert!(confirmed(&ch, q, "2", with_message_id("b")).await.is_ack());
    assert_eq!(drain(&ch, q).await, ["2"]);
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warren-fifo-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn open(dir: &Path) -> (warren::Broker, Connection, Channel) {
    let mut config = warren::BrokerConfig::default();
    config.storage.data_dir = Some(dir.to_path_buf());
    let broker = warren::Broker::open(config).expect("open data dir");
    let addr = broker.listen("127.0.0.1:0").await.expect("listen");
    let url = format!("amqp://guest:guest@{addr}/%2f");
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    (broker, conn, ch)
}

async fn stop(broker: warren::Broker, conn: Connection) {
    let _ = conn.close(200, "bye".into()).await;
    broker.shutdown().await;
}

fn durable_fifo(window_ms: i32) -> FieldTable {
    fifo(&[("x-deduplication-window", AMQPValue::LongInt(window_ms))])
}

async fn declare_durable(ch: &Channel, q: &str, args: FieldTable) {
    ch.queue_declare(
        q.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .unwrap();
}

fn persistent(group: &str, id: &str) -> BasicProperties {
    in_group(group)
        .with_message_id(id.into())
        .with_delivery_mode(2)
}

#[tokio::test]
async fn a_durable_fifo_queue_keeps_its_ids_and_group_order_across_a_restart() {
    if std::env::var("WARREN_TEST_URL").is_ok() {
        return;
    }
    let dir = temp_dir("restart");
    let q = "dedup-durable";
    let (broker, conn, ch) = open(&dir).await;
    declare_durable(&ch, q, durable_fifo(300_000)).await;
    for (g, id) in [("g", "1"), ("h", "2"), ("g", "3"), ("h", "4"), ("g", "5")] {
        assert!(confirmed(&ch, q, &format!("{g}:{id}"), persistent(g, id))
            .await
            .is_ack());
    }
    // Transient messages on a durable queue: gone after the restart, but
    // their ids were accepted by a durable queue and stay remembered.
    confirmed(&ch, q, "t:6", in_group("t").with_message_id("6".into())).await;
    // Consume and ack g:1 (its id must stay remembered too); a later
    // confirmed publish makes the ack durable.
    let d = get(&ch, q, false).await.unwrap();
    assert_eq!(text(&d), "g:1");
    ack(&d).await;
    confirmed(&ch, q, "k:7", persistent("k", "7")).await;
    stop(broker, conn).await;

    let (broker, conn, ch) = open(&dir).await;
    assert_eq!(ready(&ch, q).await, 5, "h:2 g:3 h:4 g:5 k:7 came back");
    for id in ["1", "2", "3", "6", "7"] {
        assert!(
            confirmed(&ch, q, &format!("dup:{id}"), persistent("g", id))
                .await
                .is_ack(),
            "a duplicate is acked"
        );
    }
    assert_eq!(
        ready(&ch, q).await,
        5,
        "every id was remembered across the restart"
    );
    assert!(confirmed(&ch, q, "g:8", persistent("g", "8"))
        .await
        .is_ack());
    // Group order survived: g:3 g:5 g:8, h:2 h:4, k:7.
    let mut by_group: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let (_c_ch, mut c) = consumer(&conn, q, 100).await;
    for d in take(&mut c, 6).await {
        by_group.entry(group_of(&d)).or_default().push(text(&d));
        ack(&d).await;
    }
    assert_eq!(by_group["g"], ["g:3", "g:5", "g:8"]);
    assert_eq!(by_group["h"], ["h:2", "h:4"]);
    assert_eq!(by_group["k"], ["k:7"]);
    stop(broker, conn).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn ids_whose_window_passed_while_down_are_forgotten() {
    if std::env::var("WARREN_TEST_URL").is_ok() {
        return;
    }
    let dir = temp_dir("restart-window");
    let q = "dedup-durable-window";
    let (broker, conn, ch) = open(&dir).await;
    declare_durable(&ch, q, durable_fifo(300)).await;
    let start = Instant::now();
    confirmed(&ch, q, "1", persistent("g", "a")).await;
    stop(broker, conn).await;
    if let Some(rest) = Duration::from_millis(400).checked_sub(start.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let (broker, conn, ch) = open(&dir).await;
    confirmed(&ch, q, "2", persistent("g", "a")).await;
    assert_eq!(drain(&ch, q).await, ["1", "2"]);
    stop(broker, conn).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether any log segment in `dir` holds `needle`.
fn log_contains(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir)
        .expect("data dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "wlog"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .any(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
}

/// The deduplication id of the message-id `order-1` as the log stores it:
/// SipHash-2-4-128 under the key `warren:dedup:id:` (README, "FIFO
/// queues"). Pinned: another build reading this log must compute the same
/// id, or duplicates published across an upgrade get through.
const ORDER_1_ID: [u8; 16] = [
    0xd8, 0x71, 0x91, 0xa6, 0x1a, 0x6b, 0x30, 0xde, 0xf2, 0x7e, 0xe2, 0x37, 0x6e, 0x0d, 0xcf, 0xc3,
];

#[tokio::test]
async fn the_log_holds_ids_by_the_documented_hash_and_a_restart_honours_them() {
    if std::env::var("WARREN_TEST_URL").is_ok() {
        return;
    }
    let dir = temp_dir("stable-hash");
    let q = "dedup-stable-hash";
    let (broker, conn, ch) = open(&dir).await;
    declare_durable(&ch, q, durable_fifo(300_000)).await;
    assert!(confirmed(&ch, q, "1", persistent("g", "order-1"))
        .await
        .is_ack());
    stop(broker, conn).await;
    assert!(
        log_contains(&dir, &ORDER_1_ID),
        "the DEDUP record carries the documented id of order-1"
    );

    let (broker, conn, ch) = open(&dir).await;
    assert!(confirmed(&ch, q, "dup", persistent("g", "order-1"))
        .await
        .is_ack());
    assert!(confirmed(&ch, q, "2", persistent("g", "order-2"))
        .await
        .is_ack());
    assert_eq!(drain(&ch, q).await, ["1", "2"], "the duplicate was dropped");
    stop(broker, conn).await;
    let _ = std::fs::remove_dir_all(&dir);
}
