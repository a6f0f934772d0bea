//! Message groups: order per group, one owner per group, order-keeping
//! requeue, cancel, basic.get and the default group.

use std::sync::{Arc, Mutex};

use lapin::options::*;

use crate::*;

/// Publishes `bodies` (each "group:n"; group "" = no header) to `q`.
async fn publish_all(ch: &lapin::Channel, q: &str, bodies: &[&str]) {
    for b in bodies {
        let group = b.split(':').next().unwrap_or_default();
        let group = if group == "d" { "" } else { group };
        send(ch, q, group, b).await;
    }
}

fn redelivered(ds: &[lapin::message::Delivery]) -> Vec<bool> {
    ds.iter().map(|d| d.redelivered).collect()
}

#[tokio::test]
async fn each_group_keeps_publish_order_across_consumers_with_prefetch() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = "fifo-order";
    declare_fifo(&ch, q, &[]).await;
    const GROUPS: usize = 12;
    const PER_GROUP: usize = 25;
    const TOTAL: usize = GROUPS * PER_GROUP;
    // What each consumer saw, in one log: (consumer, group, n, redelivered).
    // A consumer records a delivery before acking it, so for each group the
    // log is in delivery order even when the group moves between consumers.
    let log = Arc::new(Mutex::new(Vec::<(usize, usize, usize, bool)>::new()));
    let mut tasks = Vec::new();
    for (i, prefetch) in [3u16, 5, 10].into_iter().enumerate() {
        let (_ch, mut c) = consumer(&conn, q, prefetch).await;
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let _ch = _ch;
            loop {
                let d = match tokio::time::timeout(QUIET * 4, c.next()).await {
                    Ok(Some(Ok(d))) => d,
                    _ => return,
                };
                let body = text(&d);
                let (g, n) = body.split_once(':').unwrap();
                let (g, n): (usize, usize) = (g[1..].parse().unwrap(), n.parse().unwrap());
                log.lock().unwrap().push((i, g, n, d.redelivered));
                d.ack(BasicAckOptions::default()).await.unwrap();
            }
        }));
    }
    for n in 0..PER_GROUP {
        for g in 0..GROUPS {
            send(&ch, q, &format!("g{g}"), &format!("g{g}:{n}")).await;
        }
    }
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    while log.lock().unwrap().len() < TOTAL {
        assert!(tokio::time::Instant::now() < deadline, "not all delivered");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    let log = log.lock().unwrap();
    assert_eq!(log.len(), TOTAL, "each message exactly once");
    for g in 0..GROUPS {
        let seen: Vec<usize> = log.iter().filter(|e| e.1 == g).map(|e| e.2).collect();
        assert_eq!(
            seen,
            (0..PER_GROUP).collect::<Vec<_>>(),
            "order of group g{g}"
        );
    }
    assert!(log.iter().all(|e| !e.3), "nothing was redelivered");
    let busy = (0..3).filter(|i| log.iter().any(|e| e.0 == *i)).count();
    assert!(busy >= 2, "groups went to several consumers in parallel");
}

#[tokio::test]
async fn a_held_group_goes_to_no_other_consumer_until_all_is_acked() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = "fifo-held";
    declare_fifo(&ch, q, &[]).await;
    publish_all(
        &ch,
        q,
        &[
            "g:1", "g:2", "g:3", "g:4", "g:5", "g:6", "h:1", "h:2", "h:3",
        ],
    )
    .await;
    // A (prefetch 2) takes the oldest messages: both of group g.
    let (a_ch, mut a) = consumer(&conn, q, 2).await;
    let got = take(&mut a, 2).await;
    assert_eq!(texts(&got), ["g:1", "g:2"]);
    // B gets the other group only.
    let (_b_ch, mut bc) = consumer(&conn, q, 10).await;
    assert_eq!(texts(&take(&mut bc, 3).await), ["h:1", "h:2", "h:3"]);
    nothing(&mut bc, "B while A holds g").await;
    // One ack frees one slot of A's prefetch: A gets the next of its group.
    ack(&got[0]).await;
    let g3 = next(&mut a).await;
    assert_eq!(text(&g3), "g:3");
    nothing(&mut bc, "B while A holds g:2 and g:3").await;
    // Other groups keep flowing in parallel.
    send(&ch, q, "h", "h:4").await;
    assert_eq!(text(&next(&mut bc).await), "h:4");
    // A stops consuming but still holds g:2 and g:3: the group stays A's
    // until both are acked.
    within(
        "basic.cancel",
        a_ch.basic_cancel(a.tag(), BasicCancelOptions::default()),
    )
    .await
    .unwrap();
    ack(&got[1]).await;
    nothing(&mut bc, "B while A holds g:3").await;
    ack(&g3).await;
    let rest = take(&mut bc, 3).await;
    assert_eq!(texts(&rest), ["g:4", "g:5", "g:6"]);
    assert_eq!(redelivered(&rest), [false; 3]);
}

#[tokio::test]
async fn nack_with_requeue_returns_all_held_messages_of_the_group_in_order() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = "fifo-nack";
    declare_fifo(&ch, q, &[]).await;
    publish_all(&ch, q, &["g:1", "g:2", "g:3", "g:4", "g:5", "g:6"]).await;
    let (_a_ch, mut a) = consumer(&conn, q, 4).await;
    let got = take(&mut a, 4).await;
    assert_eq!(texts(&got), ["g:1", "g:2", "g:3", "g:4"]);
    // Nack one message in the middle: g:1..g:4 all go back, in order.
    within(
        "basic.nack",
        got[2].nack(BasicNackOptions {
            multiple: false,
            requeue: true,
        }),
    )
    .await
    .unwrap();
    let again = take(&mut a, 4).await;
    assert_eq!(texts(&again), ["g:1", "g:2", "g:3", "g:4"]);
    assert_eq!(redelivered(&again), [true; 4]);
    for d in &again {
        ack(d).await;
    }
    let rest = take(&mut a, 2).await;
    assert_eq!(texts(&rest), ["g:5", "g:6"]);
    assert_eq!(redelivered(&rest), [false; 2]);
    wait_ready(&ch, q, 0).await;
}

#[tokio::test]
async fn reject_with_requeue_releases_the_group_to_another_consumer() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = "fifo-reject";
    declare_fifo(&ch, q, &[]).await;
    publish_all(&ch, q, &["g:1", "g:2", "g:3", "g:4"]).await;
    let (a_ch, mut a) = consumer(&conn, q, 3).await;
    let got = take(&mut a, 3).await;
    assert_eq!(texts(&got), ["g:1", "g:2", "g:3"]);
    // A leaves (cancel keeps its messages), B waits for the group.
    within(
        "basic.cancel",
        a_ch.basic_cancel(a.tag(), BasicCancelOptions::default()),
    )
    .await
    .unwrap();
    let (_b_ch, mut bc) = consumer(&conn, q, 10).await;
    nothing(&mut bc, "B while A holds g").await;
    // Rejecting the last one returns all three to the head of g, and frees it.
    within(
        "basic.reject",
        got[2].reject(BasicRejectOptions { requeue: true }),
    )
    .await
    .unwrap();
    let all = take(&mut bc, 4).await;
    assert_eq!(texts(&all), ["g:1", "g:2", "g:3", "g:4"]);
    assert_eq!(redelivered(&all), [true, true, true, false]);
}

#[tokio::test]
async fn nack_multiple_returns_every_touched_group_whole() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = "fifo-nack-multiple";
    declare_fifo(&ch, q, &[]).await;
    publish_all(&ch, q, &["g:1", "h:1", "g:2", "h:2", "k:1"]).await;
    let (a_ch, mut a) = consumer(&conn, q, 5).await;
    // Oldest first: A gets everything in publish order, holding g, h and k.
    let got = take(&mut a, 5).await;
    assert_eq!(texts(&got), ["g:1", "h:1", "g:2", "h:2", "k:1"]);
    // Nack up to h:1 (multiple): g:1 and h:1 are named; g:2 and h:2 are
    // held in the touched groups and come back too; k:1 stays with A.
    within(
        "basic.nack",
        a_ch.basic_nack(
            got[1].delivery_tag,
            BasicNackOptions {
                multiple: true,
                requeue: true,
            },
        ),
    )
    .await
    .unwrap();
    let again = take(&mut a, 4).await;
    assert_eq!(texts(&again), ["g:1", "h:1", "g:2", "h:2"]);
    assert_eq!(redelivered(&again), [true; 4]);
    // k:1 is still A's, unacked: acking its original tag works.
    ack(&got[4]).await;
    for d in &again {
        ack(d).await;
    }
    wait_ready(&ch, q, 0).await;
    nothing(&mut a, "A after everything was acked").await;
}

#[tokio::test]
async fn tags_of_messages_returned_with_their_group_are_no_longer_valid() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = "fifo-stale-tags";
    declare_fifo(&ch, q, &[]).await;
    publish_all(&ch, q, &["g:1", "g:2"]).await;
    let (a_ch, mut a) = consumer(&conn, q, 1).await;
    let g1 = next(&mut a).await;
    // g:1 is held; a basic.get on another channel gets nothing of g.
    let other = conn.create_channel().await.unwrap();
    assert!(get(&other, q, false).await.is_none());
    // Reject g:1 with requeue on A: A gets it back under a new tag.
    within(
        "basic.reject",
        g1.reject(BasicRejectOptions { requeue: true }),
    )
    .await
    .unwrap();
    let again = next(&mut a).await;
    assert_eq!((text(&again).as_str(), again.redelivered), ("g:1", true));
    assert_ne!(again.delivery_tag, g1.delivery_tag);
    // The old tag was settled by the return, as after basic.recover.
    ack_refused(&a_ch, q, g1.delivery_tag, false).await;
}

/// Acks `tag` on `ch` and expects the channel closed with 406 "unknown
/// delivery tag", seen by a passive declare sent right behind the ack (sent
/// after the ack returned, it could find the channel closed already, with
/// no reply code to check).
async fn ack_refused(ch: &lapin::Channel, q: &str, tag: u64, multiple: bool) {
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let (acked, declared) = within(
        "basic.ack and queue.declare",
        futures::future::join(
            ch.basic_ack(tag, BasicAckOptions { multiple }),
            ch.queue_declare(q.into(), passive, Default::default()),
        ),
    )
    .await;
    let (code, msg) = amqp_error(acked.and(declared.map(|_| ())));
    assert_eq!(code, 406, "{msg}");
    assert_eq!(
        msg,
        format!("PRECONDITION_FAILED - unknown delivery tag {tag}")
    );
}

#[tokio::test]
async fn tags_returned_with_a_cancelled_consumers_group_are_unknown() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = "fifo-stale-cancelled";
    declare_fifo(&ch, q, &[]).await;
    publish_all(&ch, q, &["g:1", "g:2", "g:3", "h:1", "g:4"]).await;
    let (a_ch, mut a) = consumer(&conn, q, 4).await;
    let got = take(&mut a, 4).await;
    assert_eq!(texts(&got), ["g:1", "g:2", "g:3", "h:1"]);
    // Cancelled, A keeps its messages: its tags stay valid...
    within(
        "basic.cancel",
        a_ch.basic_cancel(a.tag(), BasicCancelOptions::default()),
    )
    .await
    .unwrap();
    ack(&got[3]).await;
    // ...until it nacks g:2 with requeue: g:1 and g:3 go back with it.
    within(
        "basic.nack",
        got[1].nack(BasicNackOptions {
            requeue: true,
            multiple: false,
        }),
    )
    .await
    .unwrap();
    assert_eq!(ready(&ch, q).await, 4, "g:1 g:2 g:3 g:4 are ready");
    ack_refused(&a_ch, q, got[0].delivery_tag, false).await;
    // The refused ack changed nothing: the group comes whole, in order.
    let (_b_ch, mut bc) = consumer(&conn, q, 10).await;
    let again = take(&mut bc, 4).await;
    assert_eq!(texts(&again), ["g:1", "g:2", "g:3", "g:4"]);
    assert_eq!(redelivered(&again), [true, true, true, false]);
}

#[tokio::test]
async fn a_multiple_ack_naming_a_returned_tag_is_unknown() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = "fifo-stale-multiple";
    declare_fifo(&ch, q, &[]).await;
    publish_all(&ch, q, &["g:1", "h:1", "g:2"]).await;
    let (a_ch, mut a) = consumer(&conn, q, 3).await;
    let got = take(&mut a, 3).await;
    assert_eq!(texts(&got), ["g:1", "h:1", "g:2"]);
    // Rejecting g:1 returns g:2 too; h:1 stays held.
    within(
        "basic.reject",
        got[0].reject(BasicRejectOptions { requeue: true }),
    )
    .await
    .unwrap();
    // A returns g:1 and g:2 and gets them again under new tags.
    let again = take(&mut a, 2).await;
    assert_eq!(texts(&again), ["g:1", "g:2"]);
    assert!(again.iter().all(|d| d.delivery_tag > got[2].delivery_tag));
    // Acking up to the old tag of g:2 names a tag no longer outstanding.
    ack_refused(&a_ch, q, got[2].delivery_tag, true).await;
    // Closing the channel returned everything A held, h:1 included.
    let (_b_ch, mut bc) = consumer(&conn, q, 10).await;
    let mut all = texts(&take(&mut bc, 3).await);
    all.sort();
    assert_eq!(all, ["g:1", "g:2", "h:1"]);
}

#[tokio::test]
async fn channel_close_returns_held_messages_to_the_head_of_their_group() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = "fifo-channel-close";
    declare_fifo(&ch, q, &[]).await;
    publish_all(&ch, q, &["g:1", "g:2", "g:3", "g:4", "g:5"]).await;
    let (a_ch, mut a) = consumer(&conn, q, 3).await;
    let got = take(&mut a, 3).await;
    assert_eq!(texts(&got), ["g:1", "g:2", "g:3"]);
    // The ack frees a prefetch slot: A gets g:4 as well.
    ack(&got[0]).await;
    assert_eq!(text(&next(&mut a).await), "g:4");
    let (_b_ch, mut bc) = consumer(&conn, q, 10).await;
    nothing(&mut bc, "B while A holds g").await;
    within("channel.close", a_ch.close(200, "bye".into()))
        .await
        .unwrap();
    let all = take(&mut bc, 4).await;
    assert_eq!(texts(&all), ["g:2", "g:3", "g:4", "g:5"]);
    assert_eq!(redelivered(&all), [true, true, true, false]);
}

#[tokio::test]
async fn connection_close_returns_held_messages_to_the_head_of_their_group() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = "fifo-connection-close";
    declare_fifo(&ch, q, &[]).await;
    publish_all(&ch, q, &["g:1", "g:2", "h:1", "h:2", "g:3"]).await;
    let leaving = b.connect().await;
    let (_a_ch, mut a) = consumer(&leaving, q, 2).await;
    let got = take(&mut a, 2).await;
    assert_eq!(texts(&got), ["g:1", "g:2"]);
    let (_b_ch, mut bc) = consumer(&conn, q, 10).await;
    assert_eq!(texts(&take(&mut bc, 2).await), ["h:1", "h:2"]);
    nothing(&mut bc, "B while A holds g").await;
    within("connection.close", leaving.close(200, "bye".into()))
        .await
        .unwrap();
    let all = take(&mut bc, 3).await;
    assert_eq!(texts(&all), ["g:1", "g:2", "g:3"]);
    assert_eq!(redelivered(&all), [true, true, false]);
}

#[tokio::test]
async fn cancel_does_not_requeue_and_the_group_stays_owned() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = "fifo-cancel";
    declare_fifo(&ch, q, &[]).await;
    publish_all(&ch, q, &["g:1", "g:2", "g:3", "g:4", "g:5"]).await;
    let (a_ch, mut a) = consumer(&conn, q, 3).await;
    let got = take(&mut a, 3).await;
    assert_eq!(texts(&got), ["g:1", "g:2", "g:3"]);
    within(
        "basic.cancel",
        a_ch.basic_cancel(a.tag(), BasicCancelOptions::default()),
    )
    .await
    .unwrap();
    assert_eq!(ready(&ch, q).await, 2, "cancel requeued nothing");
    let (_b_ch, mut bc) = consumer(&conn, q, 10).await;
    nothing(&mut bc, "B after A's cancel").await;
    ack(&got[0]).await;
    ack(&got[1]).await;
    nothing(&mut bc, "B while the cancelled A still holds g:3").await;
    // Closing A's channel returns g:3 to the head, redelivered.
    within("channel.close", a_ch.close(200, "bye".into()))
        .await
        .unwrap();
    let all = take(&mut bc, 3).await;
    assert_eq!(texts(&all), ["g:3", "g:4", "g:5"]);
    assert_eq!(redelivered(&all), [true, false, false]);
}

#[tokio::test]
async fn basic_get_owns_the_group_until_it_acks() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = "fifo-get";
    declare_fifo(&ch, q, &[]).await;
    publish_all(&ch, q, &["g:1", "g:2", "g:3", "h:1"]).await;
    let getter = conn.create_channel().await.unwrap();
    let g1 = get(&getter, q, false).await.expect("g:1");
    assert_eq!(text(&g1), "g:1");
    let (_b_ch, mut bc) = consumer(&conn, q, 10).await;
    assert_eq!(text(&next(&mut bc).await), "h:1");
    nothing(&mut bc, "B while a basic.get channel holds g").await;
    // The getter's next get continues its own group.
    let g2 = get(&getter, q, false).await.expect("g:2");
    assert_eq!(text(&g2), "g:2");
    ack(&g1).await;
    nothing(&mut bc, "B while the getter still holds g:2").await;
    ack(&g2).await;
    let g3 = next(&mut bc).await;
    assert_eq!((text(&g3).as_str(), g3.redelivered), ("g:3", false));
    // Now B holds g: the getter gets nothing of it.
    assert!(get(&getter, q, false).await.is_none());
    send(&ch, q, "g", "g:4").await;
    assert_eq!(text(&next(&mut bc).await), "g:4");
}

#[tokio::test]
async fn basic_get_without_ack_owns_nothing_and_get_requeue_keeps_order() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = "fifo-get-noack";
    declare_fifo(&ch, q, &[]).await;
    publish_all(&ch, q, &["g:1", "g:2", "g:3", "g:4"]).await;
    let getter = conn.create_channel().await.unwrap();
    assert_eq!(text(&get(&getter, q, true).await.unwrap()), "g:1");
    // No ack expected, so g is free: a consumer takes it at once.
    let c_conn = b.connect().await;
    let (c_ch, mut c) = consumer(&c_conn, q, 2).await;
    let held = take(&mut c, 2).await;
    assert_eq!(texts(&held), ["g:2", "g:3"]);
    within("connection.close", c_conn.close(200, "bye".into()))
        .await
        .unwrap();
    drop(c_ch);
    // Fetched one by one with ack: g:2 and g:3 (redelivered), then g:4;
    // a reject with requeue of g:3 returns g:2 as well.
    let a = get(&getter, q, false).await.unwrap();
    let bb = get(&getter, q, false).await.unwrap();
    assert_eq!(
        (text(&a), a.redelivered, text(&bb), bb.redelivered),
        ("g:2".into(), true, "g:3".into(), true)
    );
    within(
        "basic.reject",
        bb.reject(BasicRejectOptions { requeue: true }),
    )
    .await
    .unwrap();
    let order: Vec<String> = {
        let mut v = Vec::new();
        while let Some(d) = get(&getter, q, true).await {
            v.push(text(&d));
        }
        v
    };
    assert_eq!(order, ["g:2", "g:3", "g:4"]);
}

#[tokio::test]
async fn messages_without_a_group_id_form_the_default_group() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = "fifo-default-group";
    declare_fifo(&ch, q, &[]).await;
    publish_all(&ch, q, &["d:1", "d:2", "x:1", "d:3"]).await;
    let (a_ch, mut a) = consumer(&conn, q, 1).await;
    let d1 = next(&mut a).await;
    assert_eq!((text(&d1).as_str(), group_of(&d1).as_str()), ("d:1", ""));
    let (_b_ch, mut bc) = consumer(&conn, q, 10).await;
    assert_eq!(text(&next(&mut bc).await), "x:1");
    nothing(&mut bc, "B while A holds the default group").await;
    within(
        "basic.cancel",
        a_ch.basic_cancel(a.tag(), BasicCancelOptions::default()),
    )
    .await
    .unwrap();
    ack(&d1).await;
    assert_eq!(texts(&take(&mut bc, 2).await), ["d:2", "d:3"]);
}

#[tokio::test]
async fn a_transactional_ack_releases_the_group_at_commit() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = "fifo-tx";
    declare_fifo(&ch, q, &[]).await;
    publish_all(&ch, q, &["g:1", "g:2"]).await;
    let getter = conn.create_channel().await.unwrap();
    getter.tx_select().await.unwrap();
    let g1 = get(&getter, q, false).await.unwrap();
    let (_b_ch, mut bc) = consumer(&conn, q, 10).await;
    ack(&g1).await;
    nothing(&mut bc, "B before the ack is committed").await;
    within("tx.commit", getter.tx_commit()).await.unwrap();
    assert_eq!(text(&next(&mut bc).await), "g:2");
}

#[tokio::test]
async fn purge_leaves_held_groups_with_their_owner() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = "fifo-purge";
    declare_fifo(&ch, q, &[]).await;
    publish_all(&ch, q, &["g:1", "g:2", "h:1"]).await;
    let getter = conn.create_channel().await.unwrap();
    let g1 = get(&getter, q, false).await.unwrap();
    assert_eq!(text(&g1), "g:1");
    let purged = within(
        "queue.purge",
        ch.queue_purge(q.into(), QueuePurgeOptions::default()),
    )
    .await
    .unwrap();
    assert_eq!(purged, 2);
    // g:1 is still unacked: g stays the getter's.
    publish_all(&ch, q, &["g:3", "h:2"]).await;
    let (_b_ch, mut bc) = consumer(&conn, q, 10).await;
    assert_eq!(text(&next(&mut bc).await), "h:2");
    nothing(&mut bc, "B while the getter holds g:1").await;
    ack(&g1).await;
    assert_eq!(text(&next(&mut bc).await), "g:3");
}

#[tokio::test]
async fn a_free_group_does_not_wait_behind_newer_messages_of_owned_groups() {
    let Some(b) = warren().await else { return };
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = "fifo-oldest-first";
    declare_fifo(&ch, q, &[]).await;
    publish_all(&ch, q, &["g:1", "g:2", "h:1", "g:3", "h:2"]).await;
    let (_a_ch, mut a) = consumer(&conn, q, 2).await;
    let first = take(&mut a, 2).await;
    assert_eq!(texts(&first), ["g:1", "g:2"]);
    // A has room for one: h:1 (free) is older than g:3 (A's own group).
    ack(&first[0]).await;
    let h1 = next(&mut a).await;
    assert_eq!(text(&h1), "h:1");
    ack(&first[1]).await;
    ack(&h1).await;
    assert_eq!(texts(&take(&mut a, 2).await), ["g:3", "h:2"]);
}
