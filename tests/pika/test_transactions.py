"""Transactions: tx.select / tx.commit / tx.rollback over publishes and acks."""

from support import assert_counts, bodies, channel_error, get_all, ready_count, settle


def test_publishes_are_invisible_until_commit(amqp, conn, ch):
    q = amqp.queue(ch)
    observer = conn.channel()
    ch.tx_select()
    ch.basic_publish("", q, b"a")
    ch.basic_publish("", q, b"b")
    settle(conn)
    assert ready_count(observer, q) == 0
    ch.tx_commit()
    assert bodies(get_all(observer, q)) == [b"a", b"b"]


def test_rollback_discards_publishes(amqp, conn, ch):
    q = amqp.queue(ch)
    observer = conn.channel()
    ch.tx_select()
    ch.basic_publish("", q, b"discarded")
    ch.tx_rollback()
    ch.basic_publish("", q, b"kept")
    ch.tx_commit()
    assert bodies(get_all(observer, q)) == [b"kept"]


def test_channel_stays_transactional_across_commits(amqp, conn, ch):
    q = amqp.queue(ch)
    observer = conn.channel()
    ch.tx_select()
    for round_ in range(3):
        ch.basic_publish("", q, f"r{round_}".encode())
        settle(conn, 0.1)
        assert_counts(observer, q, messages=round_)
        ch.tx_commit()
        assert_counts(observer, q, messages=round_ + 1)


def test_acks_take_effect_on_commit_only(amqp, conn, ch):
    q = amqp.queue(ch)
    for body in (b"a", b"b"):
        ch.basic_publish("", q, body)
    ch.tx_select()
    method, _, body = ch.basic_get(q)
    assert body == b"a"
    ch.basic_ack(method.delivery_tag)
    ch.tx_rollback()
    # the rolled-back ack is forgotten: "a" is still unacked on this channel
    ch.basic_ack(method.delivery_tag)
    ch.tx_commit()
    ch.close()
    assert bodies(get_all(conn.channel(), q)) == [b"b"]


def test_rolled_back_ack_leaves_message_unacked(amqp, conn, ch):
    q = amqp.queue(ch)
    ch.basic_publish("", q, b"a")
    ch.tx_select()
    method, _, _ = ch.basic_get(q)
    ch.basic_ack(method.delivery_tag)
    ch.tx_rollback()
    ch.close()  # still unacked, so it is requeued
    out = get_all(conn.channel(), q)
    assert [(d.body, d.method.redelivered) for d in out] == [(b"a", True)]


def test_reject_with_requeue_applies_on_commit(amqp, conn, ch):
    q = amqp.queue(ch)
    observer = conn.channel()
    ch.basic_publish("", q, b"a")
    ch.tx_select()
    method, _, _ = ch.basic_get(q)
    ch.basic_reject(method.delivery_tag, requeue=True)
    settle(conn)
    assert ready_count(observer, q) == 0
    ch.tx_commit()
    method, _, body = observer.basic_get(q, auto_ack=True)
    assert (body, method.redelivered) == (b"a", True)


def test_mandatory_returns_arrive_at_commit(amqp, conn, ch):
    x = amqp.exchange(ch, "direct")
    returned = []
    ch.add_on_return_callback(lambda _ch, method, props, body: returned.append((method.reply_code, body)))
    ch.tx_select()
    ch.basic_publish(x, "nowhere", b"r", mandatory=True)
    settle(conn)
    assert returned == []
    ch.tx_commit()
    settle(conn)
    assert returned == [(312, b"r")]


def test_commit_without_select_is_406(conn, ch):
    with channel_error(conn, ch, 406, "PRECONDITION_FAILED - channel is not transactional"):
        ch.tx_commit()


def test_rollback_without_select_is_406(conn, ch):
    with channel_error(conn, ch, 406, "PRECONDITION_FAILED - channel is not transactional"):
        ch.tx_rollback()
