//! Routing through the default exchange, direct, fanout, topic (`*` and
//! `#`, empty words included) and headers exchanges.

use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};
use warren_tests::unique;

use crate::support::*;

#[tokio::test]
async fn default_exchange_routes_by_queue_name() {
    let (_b, _conn, ch) = setup().await;
    let q1 = exclusive_queue(&ch, "q-default").await;
    let q2 = exclusive_queue(&ch, "q-default").await;
    publish(&ch, "", &q1, "one").await;
    publish(&ch, "", &q2, "two").await;
    publish(&ch, "", &unique("no-such-queue"), "dropped").await;
    let d = get(&ch, &q1, true).await.expect("a message in q1");
    assert_eq!(body(&d.delivery), "one");
    assert_eq!(d.delivery.exchange.as_str(), "");
    assert_eq!(d.delivery.routing_key.as_str(), q1);
    assert_eq!(drain(&ch, &q1).await, Vec::<String>::new());
    assert_eq!(drain(&ch, &q2).await, vec!["two"]);
}

#[tokio::test]
async fn amq_direct_routes_on_the_exact_key() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-amq-direct").await;
    let key = unique("key");
    bind(&ch, &q, "amq.direct", &key).await;
    publish(&ch, "amq.direct", &key, "exact").await;
    publish(&ch, "amq.direct", &format!("{key}.more"), "longer").await;
    publish(&ch, "amq.direct", &key.to_uppercase(), "other case").await;
    let d = get(&ch, &q, true).await.expect("the exact-key message");
    assert_eq!(body(&d.delivery), "exact");
    assert_eq!(d.delivery.exchange.as_str(), "amq.direct");
    assert_eq!(get_body(&ch, &q).await, None);
}

#[tokio::test]
async fn direct_exchange_delivers_to_every_queue_bound_with_the_key() {
    let (_b, _conn, ch) = setup().await;
    let x = exchange(&ch, "x-direct", ExchangeKind::Direct).await;
    let q1 = exclusive_queue(&ch, "q-direct").await;
    let q2 = exclusive_queue(&ch, "q-direct").await;
    let q3 = exclusive_queue(&ch, "q-direct").await;
    bind(&ch, &q1, &x, "red").await;
    bind(&ch, &q2, &x, "red").await;
    bind(&ch, &q2, &x, "green").await;
    bind(&ch, &q3, &x, "").await;
    publish(&ch, &x, "red", "r").await;
    publish(&ch, &x, "green", "g").await;
    publish(&ch, &x, "", "empty key").await;
    publish(&ch, &x, "blue", "b").await;
    assert_eq!(drain(&ch, &q1).await, vec!["r"]);
    assert_eq!(drain(&ch, &q2).await, vec!["r", "g"]);
    assert_eq!(drain(&ch, &q3).await, vec!["empty key"]);
}

#[tokio::test]
async fn binding_twice_with_the_same_key_delivers_once() {
    let (_b, _conn, ch) = setup().await;
    let x = exchange(&ch, "x-direct", ExchangeKind::Direct).await;
    let q = exclusive_queue(&ch, "q-twice").await;
    bind(&ch, &q, &x, "k").await;
    bind(&ch, &q, &x, "k").await;
    publish(&ch, &x, "k", "once").await;
    assert_eq!(drain(&ch, &q).await, vec!["once"]);
}

#[tokio::test]
async fn unbind_stops_routing() {
    let (_b, _conn, ch) = setup().await;
    let x = exchange(&ch, "x-direct", ExchangeKind::Direct).await;
    let q = exclusive_queue(&ch, "q-unbind").await;
    bind(&ch, &q, &x, "a").await;
    bind(&ch, &q, &x, "b").await;
    ch.queue_unbind(q.as_str().into(), x.as_str().into(), "a".into(), no_args())
        .await
        .unwrap();
    publish(&ch, &x, "a", "unbound").await;
    publish(&ch, &x, "b", "still bound").await;
    assert_eq!(drain(&ch, &q).await, vec!["still bound"]);
}

#[tokio::test]
async fn fanout_delivers_to_every_bound_queue_whatever_the_key() {
    let (_b, _conn, ch) = setup().await;
    let x = exchange(&ch, "x-fanout", ExchangeKind::Fanout).await;
    let mut queues = Vec::new();
    for key in ["", "ignored", "also.ignored"] {
        let q = exclusive_queue(&ch, "q-fanout").await;
        bind(&ch, &q, &x, key).await;
        queues.push(q);
    }
    publish(&ch, &x, "any.key", "m1").await;
    publish(&ch, &x, "", "m2").await;
    for q in &queues {
        assert_eq!(drain(&ch, q).await, vec!["m1", "m2"], "queue {q}");
    }
}

#[tokio::test]
async fn amq_fanout_delivers_to_bound_queues() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-amq-fanout").await;
    bind(&ch, &q, "amq.fanout", "").await;
    publish(&ch, "amq.fanout", "whatever", "fanned").await;
    // Other tests may publish to amq.fanout concurrently on a shared broker.
    assert!(drain(&ch, &q).await.contains(&"fanned".to_string()));
}

// ------------------------------------------------------------------ topic

/// Routing keys every topic pattern below is tried against; a message's
/// body is its routing key.
const TOPIC_KEYS: &[&str] = &[
    "", "a", "b", "a.b", "a.b.c", "a..b", "a.", ".a", ".", "a.x.b", "a.x.y.b", "x.a", "ab",
];

/// The keys among [`TOPIC_KEYS`] that a queue bound to a topic exchange
/// with `pattern` receives, in publish order.
async fn topic_matches(ch: &Channel, pattern: &str) -> Vec<String> {
    let x = exchange(ch, "x-topic", ExchangeKind::Topic).await;
    let q = exclusive_queue(ch, "q-topic").await;
    bind(ch, &q, &x, pattern).await;
    for key in TOPIC_KEYS {
        publish(ch, &x, key, key).await;
    }
    drain(ch, &q).await
}

#[track_caller]
fn assert_matches(pattern: &str, got: Vec<String>, want: &[&str]) {
    assert_eq!(got, want, "keys matched by the topic pattern {pattern:?}");
}

#[tokio::test]
async fn topic_hash_alone_matches_every_key_including_the_empty_one() {
    let (_b, _conn, ch) = setup().await;
    assert_matches("#", topic_matches(&ch, "#").await, TOPIC_KEYS);
}

#[tokio::test]
async fn topic_hash_hash_matches_every_key() {
    let (_b, _conn, ch) = setup().await;
    assert_matches("#.#", topic_matches(&ch, "#.#").await, TOPIC_KEYS);
}

#[tokio::test]
async fn topic_star_matches_exactly_one_word() {
    let (_b, _conn, ch) = setup().await;
    assert_matches("*", topic_matches(&ch, "*").await, &["a", "b", "ab"]);
}

#[tokio::test]
async fn topic_star_star_matches_two_words_empty_ones_included() {
    let (_b, _conn, ch) = setup().await;
    assert_matches(
        "*.*",
        topic_matches(&ch, "*.*").await,
        &["a.b", "a.", ".a", ".", "x.a"],
    );
}

#[tokio::test]
async fn topic_hash_between_words_matches_zero_or_more_words() {
    let (_b, _conn, ch) = setup().await;
    assert_matches(
        "a.#.b",
        topic_matches(&ch, "a.#.b").await,
        &["a.b", "a..b", "a.x.b", "a.x.y.b"],
    );
}

#[tokio::test]
async fn topic_trailing_hash_matches_the_prefix_word_alone() {
    let (_b, _conn, ch) = setup().await;
    assert_matches(
        "a.#",
        topic_matches(&ch, "a.#").await,
        &["a", "a.b", "a.b.c", "a..b", "a.", "a.x.b", "a.x.y.b"],
    );
}

#[tokio::test]
async fn topic_leading_hash_matches_the_suffix_word_alone() {
    let (_b, _conn, ch) = setup().await;
    assert_matches("#.a", topic_matches(&ch, "#.a").await, &["a", ".a", "x.a"]);
}

#[tokio::test]
async fn topic_star_matches_an_empty_word() {
    let (_b, _conn, ch) = setup().await;
    assert_matches("a.*", topic_matches(&ch, "a.*").await, &["a.b", "a."]);
    assert_matches(
        "a.*.b",
        topic_matches(&ch, "a.*.b").await,
        &["a..b", "a.x.b"],
    );
    assert_matches("*.a", topic_matches(&ch, "*.a").await, &[".a", "x.a"]);
}

#[tokio::test]
async fn topic_pattern_with_an_empty_word_matches_literally() {
    let (_b, _conn, ch) = setup().await;
    assert_matches("a..b", topic_matches(&ch, "a..b").await, &["a..b"]);
}

#[tokio::test]
async fn topic_empty_pattern_matches_only_the_empty_key() {
    let (_b, _conn, ch) = setup().await;
    assert_matches("", topic_matches(&ch, "").await, &[""]);
}

#[tokio::test]
async fn topic_plain_words_match_exactly() {
    let (_b, _conn, ch) = setup().await;
    assert_matches("a.b", topic_matches(&ch, "a.b").await, &["a.b"]);
    assert_matches("a", topic_matches(&ch, "a").await, &["a"]);
}

#[tokio::test]
async fn topic_hash_then_star_needs_at_least_one_word() {
    let (_b, _conn, ch) = setup().await;
    let all_but_empty: Vec<&str> = TOPIC_KEYS
        .iter()
        .copied()
        .filter(|k| !k.is_empty())
        .collect();
    assert_matches("#.*", topic_matches(&ch, "#.*").await, &all_but_empty);
}

#[tokio::test]
async fn topic_message_matching_two_bindings_of_a_queue_is_delivered_once() {
    let (_b, _conn, ch) = setup().await;
    let x = exchange(&ch, "x-topic", ExchangeKind::Topic).await;
    let q = exclusive_queue(&ch, "q-topic-once").await;
    bind(&ch, &q, &x, "a.*").await;
    bind(&ch, &q, &x, "#").await;
    bind(&ch, &q, &x, "a.b").await;
    publish(&ch, &x, "a.b", "once").await;
    assert_eq!(drain(&ch, &q).await, vec!["once"]);
}

#[tokio::test]
async fn amq_topic_routes_on_patterns() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-amq-topic").await;
    let word = unique("w").replace('-', "_");
    bind(&ch, &q, "amq.topic", &format!("{word}.*")).await;
    publish(&ch, "amq.topic", &format!("{word}.x"), "hit").await;
    publish(&ch, "amq.topic", &format!("{word}.x.y"), "miss").await;
    assert_eq!(drain(&ch, &q).await, vec!["hit"]);
}

// ---------------------------------------------------------------- headers

/// A queue bound to a fresh headers exchange with `binding` as arguments.
async fn headers_queue(ch: &Channel, binding: FieldTable) -> (String, String) {
    let x = exchange(ch, "x-headers", ExchangeKind::Headers).await;
    let q = exclusive_queue(ch, "q-headers").await;
    bind_with(ch, &q, &x, "", binding).await;
    (x, q)
}

/// Publishes one message per header table (the body is its index) and
/// returns the indexes that reached `q`.
async fn headers_matches(ch: &Channel, x: &str, q: &str, messages: Vec<FieldTable>) -> Vec<String> {
    for (i, headers) in messages.into_iter().enumerate() {
        publish_with(
            ch,
            x,
            "",
            i.to_string().as_bytes(),
            BasicProperties::default().with_headers(headers),
            Default::default(),
        )
        .await
        .unwrap();
    }
    // A message without any headers property.
    publish(ch, x, "", "none").await;
    drain(ch, q).await
}

fn int(n: i32) -> AMQPValue {
    AMQPValue::LongInt(n)
}

#[tokio::test]
async fn headers_all_needs_every_bound_header_with_an_equal_value() {
    let (_b, _conn, ch) = setup().await;
    let (x, q) = headers_queue(
        &ch,
        table([
            ("x-match", text("all")),
            ("format", text("pdf")),
            ("pages", int(2)),
        ]),
    )
    .await;
    let got = headers_matches(
        &ch,
        &x,
        &q,
        vec![
            table([("format", text("pdf")), ("pages", int(2))]),
            table([
                ("format", text("pdf")),
                ("pages", int(2)),
                ("extra", int(1)),
            ]),
            table([("format", text("pdf"))]),
            table([("format", text("pdf")), ("pages", int(3))]),
            table([("format", text("pdf")), ("pages", text("2"))]),
            table([]),
        ],
    )
    .await;
    assert_eq!(got, vec!["0", "1"]);
}

#[tokio::test]
async fn headers_values_compare_as_numbers_across_numeric_types() {
    // RabbitMQ compares header values with Erlang's `==`: 2, 2 as a long
    // and 2.0 are equal; the string "2" is not.
    let (_b, _conn, ch) = setup().await;
    let (x, q) = headers_queue(&ch, table([("x-match", text("all")), ("n", int(2))])).await;
    let got = headers_matches(
        &ch,
        &x,
        &q,
        vec![
            table([("n", AMQPValue::LongLongInt(2))]),
            table([("n", AMQPValue::ShortShortUInt(2))]),
            table([("n", AMQPValue::Double(2.0))]),
            table([("n", AMQPValue::Float(2.5))]),
            table([("n", text("2"))]),
            table([("n", AMQPValue::Boolean(true))]),
        ],
    )
    .await;
    assert_eq!(got, vec!["0", "1", "2"]);
}

#[tokio::test]
async fn headers_without_x_match_means_all() {
    let (_b, _conn, ch) = setup().await;
    let (x, q) = headers_queue(&ch, table([("a", int(1)), ("b", int(2))])).await;
    let got = headers_matches(
        &ch,
        &x,
        &q,
        vec![
            table([("a", int(1)), ("b", int(2))]),
            table([("a", int(1))]),
        ],
    )
    .await;
    assert_eq!(got, vec!["0"]);
}

#[tokio::test]
async fn headers_any_needs_one_bound_header_with_an_equal_value() {
    let (_b, _conn, ch) = setup().await;
    let (x, q) = headers_queue(
        &ch,
        table([("x-match", text("any")), ("a", int(1)), ("b", int(2))]),
    )
    .await;
    let got = headers_matches(
        &ch,
        &x,
        &q,
        vec![
            table([("a", int(1))]),
            table([("b", int(2)), ("c", int(3))]),
            table([("a", int(2)), ("b", int(1))]),
            table([("c", int(1))]),
            table([]),
        ],
    )
    .await;
    assert_eq!(got, vec!["0", "1"]);
}

#[tokio::test]
async fn headers_void_binding_value_matches_on_presence() {
    let (_b, _conn, ch) = setup().await;
    let (x, q) = headers_queue(
        &ch,
        table([("x-match", text("all")), ("flag", AMQPValue::Void)]),
    )
    .await;
    let got = headers_matches(
        &ch,
        &x,
        &q,
        vec![
            table([("flag", int(7))]),
            table([("flag", text("anything"))]),
            table([("other", int(1))]),
        ],
    )
    .await;
    assert_eq!(got, vec!["0", "1"]);
}

#[tokio::test]
async fn headers_all_ignores_x_headers_and_all_with_x_does_not() {
    let (_b, _conn, ch) = setup().await;
    let messages = || {
        vec![
            table([("a", int(1)), ("x-tenant", text("acme"))]),
            table([("a", int(1)), ("x-tenant", text("other"))]),
            table([("a", int(1))]),
        ]
    };
    let (x, q) = headers_queue(
        &ch,
        table([
            ("x-match", text("all")),
            ("a", int(1)),
            ("x-tenant", text("acme")),
        ]),
    )
    .await;
    assert_eq!(
        headers_matches(&ch, &x, &q, messages()).await,
        vec!["0", "1", "2"]
    );

    let (x, q) = headers_queue(
        &ch,
        table([
            ("x-match", text("all-with-x")),
            ("a", int(1)),
            ("x-tenant", text("acme")),
        ]),
    )
    .await;
    assert_eq!(headers_matches(&ch, &x, &q, messages()).await, vec!["0"]);
}

#[tokio::test]
async fn headers_any_ignores_x_headers_and_any_with_x_does_not() {
    let (_b, _conn, ch) = setup().await;
    let messages = || {
        vec![
            table([("x-tenant", text("acme"))]),
            table([("x-tenant", text("other"))]),
            table([("b", int(2))]),
        ]
    };
    let (x, q) = headers_queue(
        &ch,
        table([
            ("x-match", text("any")),
            ("x-tenant", text("acme")),
            ("b", int(2)),
        ]),
    )
    .await;
    assert_eq!(headers_matches(&ch, &x, &q, messages()).await, vec!["2"]);

    let (x, q) = headers_queue(
        &ch,
        table([
            ("x-match", text("any-with-x")),
            ("x-tenant", text("acme")),
            ("b", int(2)),
        ]),
    )
    .await;
    assert_eq!(
        headers_matches(&ch, &x, &q, messages()).await,
        vec!["0", "2"]
    );
}

#[tokio::test]
async fn headers_binding_with_only_x_headers_under_all_matches_everything() {
    let (_b, _conn, ch) = setup().await;
    let (x, q) = headers_queue(
        &ch,
        table([("x-match", text("all")), ("x-only", text("v"))]),
    )
    .await;
    let got = headers_matches(&ch, &x, &q, vec![table([("a", int(1))])]).await;
    assert_eq!(got, vec!["0", "none"]);
}

#[tokio::test]
async fn amq_match_is_a_headers_exchange() {
    let (_b, _conn, ch) = setup().await;
    let q = exclusive_queue(&ch, "q-amq-match").await;
    let id = unique("id");
    bind_with(
        &ch,
        &q,
        "amq.match",
        "",
        table([("x-match", text("all")), ("test-id", text(&id))]),
    )
    .await;
    publish_with(
        &ch,
        "amq.match",
        "ignored",
        b"hit",
        BasicProperties::default().with_headers(table([("test-id", text(&id))])),
        Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(drain(&ch, &q).await, vec!["hit"]);
}

#[tokio::test]
async fn headers_unbind_needs_the_same_arguments() {
    let (_b, _conn, ch) = setup().await;
    let binding = || table([("x-match", text("all")), ("a", int(1))]);
    let (x, q) = headers_queue(&ch, binding()).await;
    // Unbinding with other arguments leaves the binding in place.
    ch.queue_unbind(
        q.as_str().into(),
        x.as_str().into(),
        "".into(),
        table([("x-match", text("all")), ("a", int(2))]),
    )
    .await
    .unwrap();
    let msg = || BasicProperties::default().with_headers(table([("a", int(1))]));
    publish_with(&ch, &x, "", b"bound", msg(), Default::default())
        .await
        .unwrap();
    assert_eq!(drain(&ch, &q).await, vec!["bound"]);
    ch.queue_unbind(q.as_str().into(), x.as_str().into(), "".into(), binding())
        .await
        .unwrap();
    publish_with(&ch, &x, "", b"unbound", msg(), Default::default())
        .await
        .unwrap();
    assert_eq!(drain(&ch, &q).await, Vec::<String>::new());
}
