//! Validation of `x-` queue arguments, of the `expiration` property and of
//! `x-priority` on basic.consume; equivalence of arguments on redeclare.
//!
//! RabbitMQ's reply texts end in Erlang terms; the tests assert the stable
//! prefix and quote the whole text RabbitMQ 3.10 sends in a comment.

use lapin::options::{BasicConsumeOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection};
use warren_tests::features::*;
use warren_tests::{start, unique};

/// Declares (exclusive) on a fresh channel and expects 406 closing only that
/// channel; returns the text.
async fn refused(conn: &Connection, queue: &str, args: FieldTable) -> String {
    let ch = conn.create_channel().await.unwrap();
    let options = QueueDeclareOptions {
        exclusive: true,
        ..QueueDeclareOptions::default()
    };
    let r = ch.queue_declare(queue.into(), options, args).await;
    expect_channel_error(conn, &ch, r, 406).await
}

#[tokio::test]
async fn invalid_queue_arguments_are_precondition_failed() {
    let b = start().await;
    let conn = b.connect().await;
    // (argument, value, what RabbitMQ 3.10 appends after
    //  "PRECONDITION_FAILED - invalid arg '<arg>' for queue '<q>' in vhost '/': ")
    let cases: Vec<(&str, AMQPValue, &str)> = vec![
        (
            "x-message-ttl",
            text("abc"),
            r#""expected integer, got longstr""#,
        ),
        ("x-message-ttl", int(-1), "{value_negative,-1}"),
        (
            "x-message-ttl",
            long(1 << 40),
            "{value_too_large,1099511627776}",
        ),
        ("x-expires", int(0), "{value_zero,0}"),
        ("x-expires", int(-5), "{value_negative,-5}"),
        ("x-expires", text("x"), r#""expected integer, got longstr""#),
        ("x-max-length", int(-1), "{value_negative,-1}"),
        (
            "x-max-length",
            text("x"),
            r#""expected integer, got longstr""#,
        ),
        ("x-max-length-bytes", int(-1), "{value_negative,-1}"),
        (
            "x-max-length-bytes",
            text("x"),
            r#""expected integer, got longstr""#,
        ),
        ("x-overflow", text("bogus"), "invalid_overflow"),
        ("x-overflow", int(1), "{unacceptable_type,signedint}"),
        (
            "x-queue-mode",
            text("bogus"),
            r#""unsupported queue mode 'bogus'""#,
        ),
        ("x-queue-mode", int(1), "{unacceptable_type,signedint}"),
        ("x-max-priority", int(256), "{max_value_exceeded,256}"),
        ("x-max-priority", int(-1), "{value_negative,-1}"),
        (
            "x-max-priority",
            text("x"),
            r#""expected integer, got longstr""#,
        ),
        (
            "x-single-active-consumer",
            text("yes"),
            "{unacceptable_type,longstr}",
        ),
        (
            "x-single-active-consumer",
            int(1),
            "{unacceptable_type,signedint}",
        ),
        (
            "x-queue-type",
            text("bogus"),
            r#""unsupported queue type 'bogus'""#,
        ),
    ];
    for (arg, value, rabbit_suffix) in cases {
        let q = unique("bad-arg");
        let reply_text = refused(&conn, &q, table([(arg, value.clone())])).await;
        let prefix =
            format!("PRECONDITION_FAILED - invalid arg '{arg}' for queue '{q}' in vhost '/'");
        assert_prefix(&reply_text, &prefix);
        if !b.is_warren() {
            // What RabbitMQ says in full (Warren need only match the prefix).
            assert_eq!(
                reply_text,
                format!("{prefix}: {rabbit_suffix}"),
                "{arg} = {value:?}"
            );
        }
    }
}

#[tokio::test]
async fn dead_letter_arguments_are_validated() {
    let b = start().await;
    let conn = b.connect().await;
    // A routing key without an exchange.
    let q = unique("dlrk-alone");
    let reply_text = refused(&conn, &q, table([("x-dead-letter-routing-key", text("k"))])).await;
    // RabbitMQ 3.10: ... for queue '<q>' in vhost '/': routing_key_but_no_dlx_defined
    assert_prefix(
        &reply_text,
        &format!(
            "PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for queue '{q}' in vhost '/'"
        ),
    );
    // A routing key that is not a string.
    let q = unique("dlrk-int");
    let args = table([
        ("x-dead-letter-exchange", text("x")),
        ("x-dead-letter-routing-key", int(5)),
    ]);
    let reply_text = refused(&conn, &q, args).await;
    // RabbitMQ 3.10: ... for queue '<q>' in vhost '/': {unacceptable_type,signedint}
    assert_prefix(
        &reply_text,
        &format!(
            "PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for queue '{q}' in vhost '/'"
        ),
    );
    // An exchange name that is not a string: RabbitMQ words this one
    // differently from all the others.
    let q = unique("dlx-int");
    let reply_text = refused(&conn, &q, table([("x-dead-letter-exchange", int(1))])).await;
    assert_eq!(
        reply_text,
        format!(
            "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue '{q}' in vhost '/'"
        )
    );
}

#[tokio::test]
async fn boundary_values_are_accepted() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    let accepted: Vec<(&str, AMQPValue)> = vec![
        ("x-max-priority", int(0)),
        ("x-max-priority", int(255)),
        ("x-message-ttl", int(0)),
        ("x-max-length", int(0)),
        ("x-max-length-bytes", int(0)),
        ("x-expires", int(1000)),
        ("x-overflow", text("reject-publish-dlx")),
        ("x-single-active-consumer", flag(false)),
        // Other integer widths are integers too.
        ("x-message-ttl", long(1000)),
        ("x-max-length", AMQPValue::ShortInt(10)),
        ("x-max-priority", AMQPValue::ShortShortUInt(5)),
    ];
    for (arg, value) in accepted {
        let q = unique("ok-arg");
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                ..QueueDeclareOptions::default()
            },
            table([(arg, value.clone())]),
        )
        .await
        .unwrap_or_else(|e| panic!("{arg} = {value:?} refused: {e}"));
    }
}

#[tokio::test]
async fn a_redeclare_with_other_arguments_is_inequivalent() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = unique("ineq");
    declare(&ch, &q, table([("x-message-ttl", int(100))])).await;
    let prefix = format!(
        "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '{q}' in vhost '/'"
    );

    // Another value.
    let reply_text = refused(&conn, &q, table([("x-message-ttl", int(200))])).await;
    assert_prefix(&reply_text, &prefix);
    if !b.is_warren() {
        assert_eq!(
            reply_text,
            format!("{prefix}: received '200' but current is '100'")
        );
    }
    // The argument left out.
    let reply_text = refused(&conn, &q, FieldTable::default()).await;
    assert_prefix(&reply_text, &prefix);
    if !b.is_warren() {
        assert_eq!(
            reply_text,
            format!("{prefix}: received none but current is the value '100' of type 'signedint'")
        );
    }
    // An argument added.
    let reply_text = refused(
        &conn,
        &q,
        table([("x-message-ttl", int(100)), ("x-max-length", int(3))]),
    )
    .await;
    let prefix = format!(
        "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '{q}' in vhost '/'"
    );
    assert_prefix(&reply_text, &prefix);
    if !b.is_warren() {
        assert_eq!(
            reply_text,
            format!("{prefix}: received the value '3' of type 'signedint' but current is none")
        );
    }
    // A string argument.
    let q2 = unique("ineq-dlx");
    declare(&ch, &q2, table([("x-dead-letter-exchange", text("a"))])).await;
    let reply_text = refused(&conn, &q2, table([("x-dead-letter-exchange", text("b"))])).await;
    assert_eq!(
        reply_text,
        format!(
            "PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for queue '{q2}' in vhost '/': received 'b' but current is 'a'"
        )
    );
    // The queue mode is compared too.
    let q3 = unique("ineq-mode");
    declare(&ch, &q3, table([("x-queue-mode", text("lazy"))])).await;
    let reply_text = refused(&conn, &q3, table([("x-queue-mode", text("default"))])).await;
    assert_eq!(
        reply_text,
        format!(
            "PRECONDITION_FAILED - inequivalent arg 'x-queue-mode' for queue '{q3}' in vhost '/': received 'default' but current is 'lazy'"
        )
    );
}

#[tokio::test]
async fn equal_values_of_other_integer_types_are_equivalent() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    let q = unique("int-widths");
    declare(&ch, &q, table([("x-message-ttl", int(100))])).await;
    declare(&ch, &q, table([("x-message-ttl", long(100))])).await;
    declare(
        &ch,
        &q,
        table([("x-message-ttl", AMQPValue::ShortInt(100))]),
    )
    .await;
}

#[tokio::test]
async fn unknown_arguments_are_not_compared_on_redeclare() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    let q = unique("unknown-args");
    declare(
        &ch,
        &q,
        table([("x-custom", text("a")), ("no-prefix", int(1))]),
    )
    .await;
    // RabbitMQ only compares the arguments it knows.
    declare(&ch, &q, table([("x-custom", text("b"))])).await;
    declare(&ch, &q, FieldTable::default()).await;
    sync(&ch).await.expect("the channel stays open");
}

#[tokio::test]
async fn a_passive_declare_ignores_arguments() {
    let b = start().await;
    let (_conn, ch) = b.channel().await;
    let q = unique("passive-args");
    declare(&ch, &q, table([("x-message-ttl", int(100))])).await;
    let ok = ch
        .queue_declare(
            q.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            table([("x-message-ttl", int(5)), ("x-max-priority", int(300))]),
        )
        .await
        .expect("passive declare");
    assert_eq!(ok.message_count(), 0);
}

#[tokio::test]
async fn an_invalid_expiration_property_is_precondition_failed() {
    let b = start().await;
    let conn = b.connect().await;
    // (expiration, RabbitMQ 3.10's full reply text)
    let cases = [
        (
            "abc",
            "PRECONDITION_FAILED - invalid expiration 'abc': no_integer",
        ),
        (
            "-1",
            "PRECONDITION_FAILED - invalid expiration '-1': {value_negative,-1}",
        ),
        (
            "1.5",
            r#"PRECONDITION_FAILED - invalid expiration '1.5': {leftover_string,".5"}"#,
        ),
        (
            "",
            "PRECONDITION_FAILED - invalid expiration '': no_integer",
        ),
    ];
    for (expiration, rabbit_text) in cases {
        let ch = conn.create_channel().await.unwrap();
        let q = unique("bad-expiration");
        declare(&ch, &q, FieldTable::default()).await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let props = BasicProperties::default().with_expiration(expiration.into());
        let r = try_publish(&ch, "", &q, b"m", props).await;
        let reply_text = expect_channel_error(&conn, &ch, r, 406).await;
        assert_prefix(
            &reply_text,
            &format!("PRECONDITION_FAILED - invalid expiration '{expiration}'"),
        );
        if !b.is_warren() {
            assert_eq!(reply_text, rabbit_text);
        }
    }
}

#[tokio::test]
async fn an_invalid_consumer_priority_is_precondition_failed() {
    let b = start().await;
    let conn = b.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = unique("bad-consumer-priority");
    declare(&ch, &q, FieldTable::default()).await;
    let r = ch
        .basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            table([("x-priority", text("high"))]),
        )
        .await;
    let reply_text = expect_channel_error(&conn, &ch, r, 406).await;
    // RabbitMQ 3.10: PRECONDITION_FAILED - invalid arg 'x-priority' for
    // queue '<q>' in vhost '/': "expected integer, got longstr"
    assert_prefix(
        &reply_text,
        &format!("PRECONDITION_FAILED - invalid arg 'x-priority' for queue '{q}' in vhost '/'"),
    );
}
