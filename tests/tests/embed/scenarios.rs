//! Scenarios written once and run through every transport (see the
//! `scenarios!` list in `main.rs`): each takes the transport and starts its
//! own broker.

use warren_tests::scenario::{expect_code, Arg, Chan, Env, Publish, QueueFlags, Transport};
use warren_tests::unique;

/// The error a failed call left on the channel. Calls that get no reply
/// (publish, ack) fail at once in-process but only on the next call over
/// TCP, so when `r` succeeded the next call reports it.
async fn failure(
    ch: &Chan,
    r: warren_tests::scenario::Result<()>,
) -> warren_tests::scenario::Error {
    match r {
        Err(e) => e,
        Ok(()) => match ch.exchange_declare("amq.direct", "direct", true).await {
            Err(e) => e,
            Ok(()) => panic!("expected the channel to be closed by an error"),
        },
    }
}

pub async fn publish_consume_ack(t: Transport) {
    let env = Env::start(t).await;
    let (_conn, ch) = env.channel().await;
    let q = unique("pca");
    ch.declare(&q).await.unwrap();
    for body in ["one", "two", "three"] {
        ch.publish(Publish::to_queue(&q, body.as_bytes()))
            .await
            .unwrap();
    }
    let mut sub = ch.consume(&q, false).await.unwrap();
    let mut tags = Vec::new();
    for expected in ["one", "two", "three"] {
        let m = sub.expect().await;
        assert_eq!(m.text(), expected);
        assert!(!m.redelivered);
        assert_eq!(m.exchange, "");
        assert_eq!(m.routing_key, q);
        tags.push(m.delivery_tag);
    }
    assert_eq!(tags, [1, 2, 3]);
    ch.ack(2, false).await.unwrap();
    ch.ack(3, true).await.unwrap();
    ch.close().await.unwrap();
    // Everything was acked: nothing comes back when the channel closes.
    let ch2 = env.connect().await.channel().await;
    assert_eq!(ch2.message_count(&q).await.unwrap(), 0);
    assert!(ch2.get(&q, true).await.unwrap().is_none());
    env.shutdown().await;
}

pub async fn unacked_messages_return_when_the_channel_closes(t: Transport) {
    let env = Env::start(t).await;
    let (conn, ch) = env.channel().await;
    let q = unique("unacked");
    ch.declare(&q).await.unwrap();
    for body in ["a", "b"] {
        ch.publish(Publish::to_queue(&q, body.as_bytes()))
            .await
            .unwrap();
    }
    let mut sub = ch.consume(&q, false).await.unwrap();
    assert_eq!(sub.bodies(2).await, ["a", "b"]);
    ch.close().await.unwrap();
    let ch2 = conn.channel().await;
    let a = ch2.get(&q, false).await.unwrap().expect("a back");
    let b = ch2.get(&q, false).await.unwrap().expect("b back");
    assert_eq!((a.text(), a.redelivered), ("a", true));
    assert_eq!((b.text(), b.redelivered), ("b", true));
    env.shutdown().await;
}

pub async fn nack_requeue_keeps_order_and_sets_redelivered(t: Transport) {
    let env = Env::start(t).await;
    let (_conn, ch) = env.channel().await;
    let q = unique("nack");
    ch.declare(&q).await.unwrap();
    for body in ["m1", "m2", "m3", "m4"] {
        ch.publish(Publish::to_queue(&q, body.as_bytes()))
            .await
            .unwrap();
    }
    // Fetched one by one, so requeued messages wait in the queue.
    let mut first = Vec::new();
    for _ in 0..4 {
        first.push(ch.get(&q, false).await.unwrap().expect("a message"));
    }
    assert!(first.iter().all(|m| !m.redelivered));
    // m2 alone, then m1 and m3 with `multiple`: each goes back to its
    // original position, ahead of m4 which was never returned.
    ch.nack(first[1].delivery_tag, false, true).await.unwrap();
    ch.nack(first[2].delivery_tag, true, true).await.unwrap();
    ch.ack(first[3].delivery_tag, false).await.unwrap();
    let mut sub = ch.consume(&q, false).await.unwrap();
    let again = [sub.expect().await, sub.expect().await, sub.expect().await];
    let texts: Vec<_> = again.iter().map(|m| m.text()).collect();
    assert_eq!(texts, ["m1", "m2", "m3"]);
    assert!(again.iter().all(|m| m.redelivered));
    // Nacked while a consumer waits: redelivered to it at once.
    ch.nack(again[1].delivery_tag, false, true).await.unwrap();
    let m2 = sub.expect().await;
    assert_eq!((m2.text(), m2.redelivered), ("m2", true));
    // reject without requeue drops it; ack the rest.
    ch.reject(again[0].delivery_tag, false).await.unwrap();
    ch.ack(0, true).await.unwrap();
    assert!(ch.get(&q, true).await.unwrap().is_none());
    assert_eq!(ch.message_count(&q).await.unwrap(), 0);
    env.shutdown().await;
}

pub async fn basic_get_and_purge(t: Transport) {
    let env = Env::start(t).await;
    let (_conn, ch) = env.channel().await;
    let q = unique("get");
    ch.declare(&q).await.unwrap();
    assert!(ch.get(&q, false).await.unwrap().is_none());
    for body in ["x", "y", "z"] {
        ch.publish(Publish::to_queue(&q, body.as_bytes()))
            .await
            .unwrap();
    }
    let x = ch.get(&q, false).await.unwrap().expect("x");
    assert_eq!(x.text(), "x");
    ch.ack(x.delivery_tag, false).await.unwrap();
    let y = ch.get(&q, true).await.unwrap().expect("y");
    assert_eq!(y.text(), "y");
    assert_eq!(ch.queue_purge(&q).await.unwrap(), 1);
    assert!(ch.get(&q, true).await.unwrap().is_none());
    assert_eq!(ch.queue_delete(&q).await.unwrap(), 0);
    env.shutdown().await;
}

pub async fn confirms_ack_every_publish_and_report_returns(t: Transport) {
    let env = Env::start(t).await;
    let (_conn, ch) = env.channel().await;
    let q = unique("confirm");
    ch.declare(&q).await.unwrap();
    ch.confirm_select().await.unwrap();
    for i in 0..20 {
        let body = format!("c{i}");
        let c = ch
            .publish_confirmed(Publish::to_queue(&q, body.as_bytes()))
            .await
            .unwrap();
        assert!(c.ack && !c.returned);
    }
    assert_eq!(ch.message_count(&q).await.unwrap(), 20);
    // Mandatory and unroutable: returned, then acked.
    let nowhere = Publish {
        mandatory: true,
        ..Publish::to("amq.direct", "no-such-binding", b"lost")
    };
    let c = ch.publish_confirmed(nowhere).await.unwrap();
    assert!(c.ack && c.returned);
    // Not mandatory: dropped silently, acked.
    let c = ch
        .publish_confirmed(Publish::to("amq.direct", "no-such-binding", b"dropped"))
        .await
        .unwrap();
    assert!(c.ack && !c.returned);
    env.shutdown().await;
}

pub async fn routing_direct(t: Transport) {
    let env = Env::start(t).await;
    let (_conn, ch) = env.channel().await;
    let x = unique("x-direct");
    let (qa, qb) = (unique("qa"), unique("qb"));
    ch.exchange_declare(&x, "direct", false).await.unwrap();
    ch.declare(&qa).await.unwrap();
    ch.declare(&qb).await.unwrap();
    ch.queue_bind(&qa, &x, "a", &[]).await.unwrap();
    ch.queue_bind(&qb, &x, "b", &[]).await.unwrap();
    ch.queue_bind(&qb, &x, "both", &[]).await.unwrap();
    ch.queue_bind(&qa, &x, "both", &[]).await.unwrap();
    for key in ["a", "b", "both", "none"] {
        ch.publish(Publish::to(&x, key, key.as_bytes()))
            .await
            .unwrap();
    }
    let mut a = ch.consume(&qa, true).await.unwrap();
    let mut b = ch.consume(&qb, true).await.unwrap();
    assert_eq!(a.bodies(2).await, ["a", "both"]);
    assert_eq!(b.bodies(2).await, ["b", "both"]);
    ch.queue_unbind(&qa, &x, "a", &[]).await.unwrap();
    ch.publish(Publish::to(&x, "a", b"a2")).await.unwrap();
    ch.publish(Publish::to(&x, "both", b"both2")).await.unwrap();
    assert_eq!(a.bodies(1).await, ["both2"]);
    assert_eq!(b.bodies(1).await, ["both2"]);
    env.shutdown().await;
}

pub async fn routing_topic(t: Transport) {
    let env = Env::start(t).await;
    let (_conn, ch) = env.channel().await;
    let x = unique("x-topic");
    ch.exchange_declare(&x, "topic", false).await.unwrap();
    let patterns = ["*.orange.*", "*.*.rabbit", "lazy.#", "#"];
    let mut queues = Vec::new();
    for p in patterns {
        let q = unique("topic");
        ch.declare(&q).await.unwrap();
        ch.queue_bind(&q, &x, p, &[]).await.unwrap();
        queues.push(q);
    }
    let keys = [
        "quick.orange.rabbit",
        "lazy.orange.elephant",
        "quick.brown.fox",
        "lazy",
        "orange",
    ];
    for k in keys {
        ch.publish(Publish::to(&x, k, k.as_bytes())).await.unwrap();
    }
    let expected: [&[&str]; 4] = [
        &["quick.orange.rabbit", "lazy.orange.elephant"],
        &["quick.orange.rabbit"],
        &["lazy.orange.elephant", "lazy"],
        &keys,
    ];
    for (q, want) in queues.iter().zip(expected) {
        let mut sub = ch.consume(q, true).await.unwrap();
        assert_eq!(
            sub.bodies(want.len()).await,
            want,
            "queue bound with a pattern"
        );
        assert_eq!(ch.message_count(q).await.unwrap(), 0);
    }
    env.shutdown().await;
}

pub async fn routing_fanout(t: Transport) {
    let env = Env::start(t).await;
    let (_conn, ch) = env.channel().await;
    let x = unique("x-fanout");
    ch.exchange_declare(&x, "fanout", false).await.unwrap();
    let mut subs = Vec::new();
    for _ in 0..3 {
        let q = ch.declare("").await.unwrap().name;
        assert!(q.starts_with("amq.gen-"), "{q}");
        ch.queue_bind(&q, &x, "ignored", &[]).await.unwrap();
        subs.push(ch.consume(&q, true).await.unwrap());
    }
    ch.publish(Publish::to(&x, "any-key", b"to all"))
        .await
        .unwrap();
    for s in &mut subs {
        let m = s.expect().await;
        assert_eq!(m.text(), "to all");
        assert_eq!(m.exchange, x);
        assert_eq!(m.routing_key, "any-key");
    }
    env.shutdown().await;
}

pub async fn routing_headers(t: Transport) {
    let env = Env::start(t).await;
    let (_conn, ch) = env.channel().await;
    let x = unique("x-headers");
    ch.exchange_declare(&x, "headers", false).await.unwrap();
    let (all, any) = (unique("all"), unique("any"));
    ch.declare(&all).await.unwrap();
    ch.declare(&any).await.unwrap();
    let bind_all = [
        ("x-match", Arg::Str("all")),
        ("format", Arg::Str("pdf")),
        ("type", Arg::Str("report")),
    ];
    let bind_any = [
        ("x-match", Arg::Str("any")),
        ("format", Arg::Str("pdf")),
        ("type", Arg::Str("log")),
    ];
    ch.queue_bind(&all, &x, "", &bind_all).await.unwrap();
    ch.queue_bind(&any, &x, "", &bind_any).await.unwrap();
    let cases: [(&str, &[(&str, Arg)]); 4] = [
        (
            "pdf-report",
            &[("format", Arg::Str("pdf")), ("type", Arg::Str("report"))],
        ),
        ("pdf-only", &[("format", Arg::Str("pdf"))]),
        ("log", &[("type", Arg::Str("log")), ("size", Arg::Int(7))]),
        ("neither", &[("format", Arg::Str("zip"))]),
    ];
    for (body, headers) in cases {
        let p = Publish {
            headers,
            ..Publish::to(&x, "", body.as_bytes())
        };
        ch.publish(p).await.unwrap();
    }
    let mut a = ch.consume(&all, true).await.unwrap();
    let mut b = ch.consume(&any, true).await.unwrap();
    assert_eq!(a.bodies(1).await, ["pdf-report"]);
    assert_eq!(b.bodies(3).await, ["pdf-report", "pdf-only", "log"]);
    assert_eq!(ch.message_count(&all).await.unwrap(), 0);
    assert_eq!(ch.message_count(&any).await.unwrap(), 0);
    env.shutdown().await;
}

pub async fn exclusive_queue_is_locked_to_its_connection(t: Transport) {
    let env = Env::start(t).await;
    let (owner, ch) = env.channel().await;
    let q = unique("excl");
    let excl = QueueFlags {
        exclusive: true,
        ..Default::default()
    };
    ch.queue_declare(&q, excl).await.unwrap();
    ch.publish(Publish::to_queue(&q, b"mine")).await.unwrap();
    // The owner may use it from any of its channels.
    let ch2 = owner.channel().await;
    assert_eq!(ch2.message_count(&q).await.unwrap(), 1);

    let (other, och) = env.channel().await;
    let text = expect_code(och.queue_declare(&q, excl).await, 405);
    assert!(text.contains("RESOURCE_LOCKED"), "{text}");
    let och = other.channel().await;
    expect_code(och.consume(&q, false).await.map(drop), 405);
    let och = other.channel().await;
    expect_code(och.get(&q, false).await.map(drop), 405);

    // Gone with its connection.
    owner.close().await;
    let och = other.channel().await;
    let passive = QueueFlags {
        passive: true,
        ..Default::default()
    };
    expect_code(och.queue_declare(&q, passive).await, 404);
    env.shutdown().await;
}

pub async fn missing_queue_is_404_and_the_connection_goes_on(t: Transport) {
    let env = Env::start(t).await;
    let conn = env.connect().await;
    let missing = unique("missing");
    let passive = QueueFlags {
        passive: true,
        ..Default::default()
    };
    let ch = conn.channel().await;
    let text = expect_code(ch.queue_declare(&missing, passive).await, 404);
    assert!(
        text.contains("NOT_FOUND") && text.contains(&missing),
        "{text}"
    );
    // The channel is closed: every later call fails.
    assert!(ch.declare(&unique("after")).await.is_err());
    let ch = conn.channel().await;
    expect_code(ch.consume(&missing, false).await.map(drop), 404);
    let ch = conn.channel().await;
    expect_code(ch.get(&missing, false).await.map(drop), 404);
    let ch = conn.channel().await;
    expect_code(ch.queue_bind(&missing, "amq.direct", "k", &[]).await, 404);
    let ch = conn.channel().await;
    expect_code(ch.queue_bind("", "amq.direct", "k", &[]).await, 404);
    // The connection is fine.
    let ch = conn.channel().await;
    let q = unique("fine");
    ch.declare(&q).await.unwrap();
    ch.publish(Publish::to_queue(&q, b"ok")).await.unwrap();
    assert_eq!(ch.get(&q, true).await.unwrap().unwrap().text(), "ok");
    env.shutdown().await;
}

pub async fn inequivalent_redeclare_is_406(t: Transport) {
    let env = Env::start(t).await;
    let conn = env.connect().await;
    let q = unique("equiv");
    let ch = conn.channel().await;
    ch.declare(&q).await.unwrap();
    let durable = QueueFlags {
        durable: true,
        ..Default::default()
    };
    let text = expect_code(ch.queue_declare(&q, durable).await, 406);
    assert!(text.contains("inequivalent arg 'durable'"), "{text}");
    let ch = conn.channel().await;
    let x = unique("xequiv");
    ch.exchange_declare(&x, "direct", false).await.unwrap();
    let text = expect_code(ch.exchange_declare(&x, "fanout", false).await, 406);
    assert!(text.contains("inequivalent arg 'type'"), "{text}");
    // Redeclaring the same way is fine.
    let ch = conn.channel().await;
    ch.declare(&q).await.unwrap();
    ch.exchange_declare(&x, "direct", false).await.unwrap();
    env.shutdown().await;
}

pub async fn publish_to_a_missing_exchange_is_404(t: Transport) {
    let env = Env::start(t).await;
    let conn = env.connect().await;
    let ch = conn.channel().await;
    ch.confirm_select().await.unwrap();
    let x = unique("no-exchange");
    let e = ch
        .publish_confirmed(Publish::to(&x, "k", b"lost"))
        .await
        .unwrap_err();
    assert_eq!(e.code, 404, "{e:?}");
    assert!(e.text.contains(&x), "{e:?}");
    assert!(ch.declare(&unique("after")).await.is_err());
    let ch = conn.channel().await;
    ch.declare(&unique("fine")).await.unwrap();
    env.shutdown().await;
}

pub async fn ack_of_an_unknown_tag_is_406(t: Transport) {
    let env = Env::start(t).await;
    let conn = env.connect().await;
    let ch = conn.channel().await;
    let r = ch.ack(99, false).await;
    let e = failure(&ch, r).await;
    assert_eq!(e.code, 406, "{e:?}");
    assert!(e.text.contains("unknown delivery tag 99"), "{e:?}");
    let ch = conn.channel().await;
    ch.declare(&unique("fine")).await.unwrap();
    env.shutdown().await;
}

pub async fn consumer_ends_on_cancel(t: Transport) {
    let env = Env::start(t).await;
    let (_conn, ch) = env.channel().await;
    let q = unique("cancel");
    ch.declare(&q).await.unwrap();
    let mut sub = ch.consume_with(&q, "my-tag", true, false).await.unwrap();
    assert_eq!(sub.tag(), "my-tag");
    ch.publish(Publish::to_queue(&q, b"before")).await.unwrap();
    assert_eq!(sub.bodies(1).await, ["before"]);
    ch.cancel("my-tag").await.unwrap();
    sub.expect_end().await;
    ch.publish(Publish::to_queue(&q, b"after")).await.unwrap();
    assert_eq!(ch.message_count(&q).await.unwrap(), 1);
    // The tag is free again.
    let mut sub = ch.consume_with(&q, "my-tag", true, false).await.unwrap();
    assert_eq!(sub.bodies(1).await, ["after"]);
    env.shutdown().await;
}

pub async fn consumer_ends_when_its_queue_is_deleted(t: Transport) {
    let env = Env::start(t).await;
    let (conn, ch) = env.channel().await;
    let q = unique("deleted");
    ch.declare(&q).await.unwrap();
    let mut sub = ch.consume(&q, false).await.unwrap();
    ch.publish(Publish::to_queue(&q, b"last")).await.unwrap();
    assert_eq!(sub.bodies(1).await, ["last"]);
    // Deleted from another channel: the server cancels the consumer.
    let other = conn.channel().await;
    other.queue_delete(&q).await.unwrap();
    sub.expect_end().await;
    env.shutdown().await;
}

pub async fn exclusive_consumer_and_prefetch(t: Transport) {
    let env = Env::start(t).await;
    let (conn, ch) = env.channel().await;
    let q = unique("prefetch");
    ch.declare(&q).await.unwrap();
    ch.qos(2).await.unwrap();
    let mut sub = ch.consume_with(&q, "", false, true).await.unwrap();
    let other = conn.channel().await;
    let text = expect_code(other.consume(&q, true).await.map(drop), 403);
    assert!(text.contains("exclusive"), "{text}");
    for i in 0..5 {
        ch.publish(Publish::to_queue(&q, format!("p{i}").as_bytes()))
            .await
            .unwrap();
    }
    let m0 = sub.expect().await;
    let m1 = sub.expect().await;
    assert_eq!((m0.text(), m1.text()), ("p0", "p1"));
    // Two unacked: the other three wait in the queue.
    assert_eq!(ch.message_count(&q).await.unwrap(), 3);
    ch.ack(m0.delivery_tag, false).await.unwrap();
    assert_eq!(sub.expect().await.text(), "p2");
    assert_eq!(ch.message_count(&q).await.unwrap(), 2);
    env.shutdown().await;
}

pub async fn transactions_commit_and_roll_back(t: Transport) {
    let env = Env::start(t).await;
    let (_conn, ch) = env.channel().await;
    let q = unique("tx");
    ch.declare(&q).await.unwrap();
    ch.tx_select().await.unwrap();
    ch.publish(Publish::to_queue(&q, b"t1")).await.unwrap();
    assert_eq!(ch.message_count(&q).await.unwrap(), 0);
    ch.tx_commit().await.unwrap();
    assert_eq!(ch.message_count(&q).await.unwrap(), 1);
    ch.publish(Publish::to_queue(&q, b"t2")).await.unwrap();
    ch.tx_rollback().await.unwrap();
    ch.tx_commit().await.unwrap();
    assert_eq!(ch.message_count(&q).await.unwrap(), 1);
    // Confirm mode after tx is refused.
    expect_code(ch.confirm_select().await, 406);
    env.shutdown().await;
}

pub async fn round_robin_between_consumers(t: Transport) {
    let env = Env::start(t).await;
    let (_conn, ch) = env.channel().await;
    let q = unique("rr");
    ch.declare(&q).await.unwrap();
    let mut a = ch.consume(&q, true).await.unwrap();
    let mut b = ch.consume(&q, true).await.unwrap();
    for i in 0..6 {
        ch.publish(Publish::to_queue(&q, format!("{i}").as_bytes()))
            .await
            .unwrap();
    }
    assert_eq!(a.bodies(3).await, ["0", "2", "4"]);
    assert_eq!(b.bodies(3).await, ["1", "3", "5"]);
    env.shutdown().await;
}
