//! Transactions: publishes and acks take effect at tx.commit, tx.rollback
//! discards them, and commit/rollback without tx.select is 406.

use lapin::options::{BasicAckOptions, BasicRejectOptions};

use crate::support::*;

#[tokio::test]
async fn publishes_are_invisible_until_commit() {
    let (_b, conn, ch) = setup_plain().await;
    let q = exclusive_queue(&ch, "q-tx-publish").await;
    let other = conn.create_channel().await.unwrap();
    ch.tx_select().await.unwrap();
    publish_all(&ch, &q, &["m1", "m2"]).await;
    // The channel has handled both publishes (methods are handled in
    // order), yet nothing is in the queue.
    sync(&ch).await.unwrap();
    assert_eq!(get_body(&other, &q).await, None);
    ch.tx_commit().await.unwrap();
    assert_eq!(drain(&ch, &q).await, vec!["m1", "m2"]);
}

#[tokio::test]
async fn rollback_discards_the_publishes() {
    let (_b, _conn, ch) = setup_plain().await;
    let q = exclusive_queue(&ch, "q-tx-rollback").await;
    ch.tx_select().await.unwrap();
    publish_all(&ch, &q, &["discarded1", "discarded2"]).await;
    ch.tx_rollback().await.unwrap();
    // The channel stays transactional: the next commit covers only what
    // came after the rollback.
    publish(&ch, "", &q, "kept").await;
    ch.tx_commit().await.unwrap();
    assert_eq!(drain(&ch, &q).await, vec!["kept"]);
}

#[tokio::test]
async fn each_commit_starts_a_new_transaction() {
    let (_b, conn, ch) = setup_plain().await;
    let q = exclusive_queue(&ch, "q-tx-again").await;
    let other = conn.create_channel().await.unwrap();
    ch.tx_select().await.unwrap();
    publish(&ch, "", &q, "first").await;
    ch.tx_commit().await.unwrap();
    publish(&ch, "", &q, "second").await;
    sync(&ch).await.unwrap();
    assert_eq!(drain(&ch, &q).await, vec!["first"]);
    assert_eq!(get_body(&other, &q).await, None);
    ch.tx_commit().await.unwrap();
    assert_eq!(drain(&ch, &q).await, vec!["second"]);
}

#[tokio::test]
async fn acks_take_effect_at_commit() {
    let (_b, conn, ch) = setup_plain().await;
    let q = exclusive_queue(&ch, "q-tx-ack").await;
    publish_all(&ch, &q, &["m1", "m2"]).await;
    let txc = conn.create_channel().await.unwrap();
    txc.tx_select().await.unwrap();
    let m1 = get(&txc, &q, false).await.unwrap();
    let _m2 = get(&txc, &q, false).await.unwrap();
    m1.delivery.ack(BasicAckOptions::default()).await.unwrap();
    txc.tx_commit().await.unwrap();
    // m1's ack was committed; m2 was never acked and returns on close.
    txc.close(200, "OK".into()).await.unwrap();
    let back = get(&ch, &q, true).await.expect("m2");
    assert_eq!(body(&back.delivery), "m2");
    assert!(back.delivery.redelivered);
    assert!(get(&ch, &q, true).await.is_none());
}

#[tokio::test]
async fn rolled_back_acks_leave_the_messages_unacked() {
    let (_b, conn, ch) = setup_plain().await;
    let q = exclusive_queue(&ch, "q-tx-ack-rollback").await;
    publish_all(&ch, &q, &["m1", "m2"]).await;
    let txc = conn.create_channel().await.unwrap();
    txc.tx_select().await.unwrap();
    let m1 = get(&txc, &q, false).await.unwrap();
    let m2 = get(&txc, &q, false).await.unwrap();
    m1.delivery.ack(BasicAckOptions::default()).await.unwrap();
    m2.delivery
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    txc.tx_rollback().await.unwrap();
    // Neither the ack nor the reject happened: both are still unacked
    // (not requeued) until the channel closes.
    assert_eq!(message_count(&ch, &q).await, 0);
    txc.close(200, "OK".into()).await.unwrap();
    let mut back = Vec::new();
    while let Some(m) = get(&ch, &q, true).await {
        back.push((body(&m.delivery), m.delivery.redelivered));
    }
    assert_eq!(
        back,
        vec![("m1".to_string(), true), ("m2".to_string(), true)]
    );
}

#[tokio::test]
async fn commit_without_select_is_406() {
    let (_b, conn, ch) = setup_plain().await;
    let r = ch.tx_commit().await;
    let text = expect_channel_closed(&conn, &ch, r, 406).await;
    assert_eq!(text, "PRECONDITION_FAILED - channel is not transactional");
}

#[tokio::test]
async fn rollback_without_select_is_406() {
    let (_b, conn, ch) = setup_plain().await;
    let r = ch.tx_rollback().await;
    let text = expect_channel_closed(&conn, &ch, r, 406).await;
    assert_eq!(text, "PRECONDITION_FAILED - channel is not transactional");
}

#[tokio::test]
async fn closing_a_channel_discards_its_open_transaction() {
    let (_b, conn, ch) = setup_plain().await;
    let q = exclusive_queue(&ch, "q-tx-close").await;
    let txc = conn.create_channel().await.unwrap();
    txc.tx_select().await.unwrap();
    publish(&txc, "", &q, "never committed").await;
    txc.close(200, "OK".into()).await.unwrap();
    assert_eq!(drain(&ch, &q).await, Vec::<String>::new());
}

#[tokio::test]
async fn an_uncommitted_ack_is_discarded_when_the_channel_closes() {
    let (_b, conn, ch) = setup_plain().await;
    let q = exclusive_queue(&ch, "q-tx-ack-close").await;
    publish(&ch, "", &q, "m1").await;
    let txc = conn.create_channel().await.unwrap();
    txc.tx_select().await.unwrap();
    let m1 = get(&txc, &q, false).await.unwrap();
    m1.delivery.ack(BasicAckOptions::default()).await.unwrap();
    txc.close(200, "OK".into()).await.unwrap();
    let back = get(&ch, &q, true).await.expect("m1, never acked");
    assert_eq!(body(&back.delivery), "m1");
    assert!(back.delivery.redelivered);
}
