"""Routing: direct, fanout, topic (* and #, empty words) and headers exchanges,
exchange-to-exchange bindings and the predeclared exchanges.

The topic and headers tables were recorded against RabbitMQ 3.10. Routing is
observed through confirms + mandatory: a message that reaches no queue comes
back as pika's UnroutableError.
"""

import pika
import pytest
from pika.exceptions import UnroutableError

from support import assert_counts, bodies, channel_error, get_all


def routed(ch, exchange, routing_key, headers=None) -> bool:
    """Publish (confirm mode, mandatory) and tell whether any queue took it."""
    try:
        ch.basic_publish(exchange, routing_key, b"probe", pika.BasicProperties(headers=headers), mandatory=True)
    except UnroutableError:
        return False
    return True


# (binding key, routing key, routed?)
TOPIC_CASES = [
    ("a.b.c", "a.b.c", True),
    ("a.b.c", "a.b", False),
    ("a.b", "A.B", False),
    ("a.*.c", "a.b.c", True),
    ("a.*.c", "a..c", True),  # * matches an empty word
    ("a.*.c", "a.c", False),
    ("a.*", "a.", True),
    ("a.*", "a", False),
    ("*", "a", True),
    ("*", "a.b", False),
    ("*", "", False),  # the empty routing key has no words at all
    ("*", ".", False),  # "." is two empty words
    ("*.*", ".", True),
    ("*.*", "a", False),
    ("#", "", True),
    ("#", ".", True),
    ("#", "a.b.c", True),
    ("#.#", "", True),
    ("#.#", "a", True),
    ("a.#", "a", True),  # # matches zero words
    ("a.#", "a.b.c", True),
    ("a.#", "ab", False),
    ("a.#.c", "a.c", True),
    ("a.#.c", "a.b.x.c", True),
    ("a.#.c", "a.b.c.d", False),
    ("#.c", "c", True),
    ("#.c", "a.c", True),
    ("#.*", "", False),
    ("#.*", "a.b", True),
    ("*.#", "", False),
    ("*.#", "a", True),
    ("a.*.#", "a", False),
    ("a.*.#", "a.b", True),
    ("a.*.#", "a.b.c", True),
    ("#.b.#", "b", True),
    ("#.b.#", "a.b.c", True),
    ("#.b.#", "abc", False),
    ("#.a.#.a.#", "a.a", True),
    ("#.a.#.a.#", "a", False),
    ("*.b.*", "x.b.y", True),
    ("", "", True),
    ("", "a", False),
    ("a..b", "a..b", True),
    ("a..b", "a.b", False),
    ("..", "..", True),
    ("..", ".", False),
    ("a.*.*", "a..", True),
]


@pytest.mark.parametrize("binding_key,routing_key,expected", TOPIC_CASES, ids=[f"{b!r}~{r!r}" for b, r, _ in TOPIC_CASES])
def test_topic_matching(amqp, ch, binding_key, routing_key, expected):
    x = amqp.exchange(ch, "topic")
    q = amqp.queue(ch)
    ch.queue_bind(q, x, binding_key)
    ch.confirm_delivery()
    assert routed(ch, x, routing_key) == expected
    assert_counts(ch, q, messages=(1 if expected else 0))


def test_topic_message_reaches_a_queue_once_despite_several_matching_bindings(amqp, ch):
    x = amqp.exchange(ch, "topic")
    q = amqp.queue(ch)
    for key in ("a.*", "#", "a.b"):
        ch.queue_bind(q, x, key)
    ch.confirm_delivery()
    ch.basic_publish(x, "a.b", b"once")
    assert bodies(get_all(ch, q)) == [b"once"]


def test_topic_routes_to_every_matching_queue(amqp, ch):
    x = amqp.exchange(ch, "topic")
    bindings = {"stock.#": [], "stock.*.nyse": [], "*.ibm.*": [], "news.#": []}
    for key in bindings:
        bindings[key] = amqp.queue(ch)
        ch.queue_bind(bindings[key], x, key)
    ch.confirm_delivery()
    ch.basic_publish(x, "stock.ibm.nyse", b"quote")
    expected = {"stock.#": 1, "stock.*.nyse": 1, "*.ibm.*": 1, "news.#": 0}
    for key, q in bindings.items():
        assert_counts(ch, q, messages=expected[key])


def test_topic_unbind_stops_routing(amqp, ch):
    x = amqp.exchange(ch, "topic")
    q = amqp.queue(ch)
    ch.queue_bind(q, x, "a.#")
    ch.confirm_delivery()
    assert routed(ch, x, "a.b")
    ch.queue_unbind(q, x, "a.#")
    assert not routed(ch, x, "a.b")


# (binding arguments, message headers, routed?)
HEADERS_CASES = [
    ({"x-match": "all", "a": 1, "b": "two"}, {"a": 1, "b": "two"}, True),
    ({"x-match": "all", "a": 1, "b": "two"}, {"a": 1, "b": "two", "c": 3}, True),
    ({"x-match": "all", "a": 1, "b": "two"}, {"a": 1}, False),
    ({"x-match": "all", "a": 1, "b": "two"}, {"a": 1, "b": "three"}, False),
    ({"a": 1, "b": "two"}, {"a": 1}, False),  # x-match defaults to all
    ({"a": 1, "b": "two"}, {"a": 1, "b": "two"}, True),
    ({"x-match": "any", "a": 1, "b": "two"}, {"a": 1}, True),
    ({"x-match": "any", "a": 1, "b": "two"}, {"a": 2, "b": "three"}, False),
    ({"x-match": "any", "a": 1, "b": "two"}, None, False),
    ({"x-match": "all"}, None, True),
    ({"x-match": "all"}, {"z": 1}, True),
    ({"x-match": "any"}, {"z": 1}, False),
    ({"x-match": "any"}, None, False),
    ({"x-match": "all", "a": 1}, {"a": "1"}, False),  # types must match
    ({"x-match": "all", "a": "1"}, {"a": "1"}, True),
    ({"x-match": "all", "a": True}, {"a": True}, True),
    ({"x-match": "all", "a": True}, {"a": 1}, False),
    ({"x-match": "all", "a": [1, 2]}, {"a": [1, 2]}, True),
    ({"x-match": "all", "a": None}, {"a": "anything"}, True),  # void: presence only
    ({"x-match": "all", "a": None}, {"b": "anything"}, False),
    ({"x-match": "all", "x-foo": "bar"}, {"x-foo": "baz"}, True),  # x- keys ignored
    ({"x-match": "all", "x-foo": "bar"}, {}, True),
    ({"x-match": "any", "x-foo": "bar"}, {"x-foo": "bar"}, False),
    ({"x-match": "all-with-x", "x-foo": "bar"}, {"x-foo": "bar"}, True),
    ({"x-match": "all-with-x", "x-foo": "bar"}, {"x-foo": "baz"}, False),
    ({"x-match": "any-with-x", "x-foo": "bar", "a": 1}, {"x-foo": "bar"}, True),
    ({"x-match": "any-with-x", "x-foo": "bar", "a": 1}, {"x-foo": "baz"}, False),
]


@pytest.mark.parametrize("arguments,headers,expected", HEADERS_CASES, ids=[f"case{i}" for i in range(len(HEADERS_CASES))])
def test_headers_matching(amqp, ch, arguments, headers, expected):
    x = amqp.exchange(ch, "headers")
    q = amqp.queue(ch)
    ch.queue_bind(q, x, "", arguments=arguments)
    ch.confirm_delivery()
    assert routed(ch, x, "ignored-routing-key", headers) == expected
    assert_counts(ch, q, messages=(1 if expected else 0))


def test_amq_match_is_a_headers_exchange(amqp, ch):
    q = amqp.queue(ch)
    ch.queue_bind(q, "amq.match", "", arguments={"x-match": "any", "route-to": q})
    ch.confirm_delivery()
    assert routed(ch, "amq.match", "", {"route-to": q})
    assert ch.basic_get(q, auto_ack=True)[2] == b"probe"


def test_headers_binding_with_invalid_x_match_is_406(amqp, conn, ch):
    x = amqp.exchange(ch, "headers")
    q = amqp.queue(ch)
    with channel_error(conn, ch, 406, prefix="PRECONDITION_FAILED - Invalid x-match field value"):
        ch.queue_bind(q, x, "", arguments={"x-match": "bogus"})


def test_direct_exchange_routes_by_exact_key(amqp, ch):
    x = amqp.exchange(ch, "direct")
    qa, qb, qa2 = amqp.queue(ch), amqp.queue(ch), amqp.queue(ch)
    ch.queue_bind(qa, x, "a")
    ch.queue_bind(qb, x, "b")
    ch.queue_bind(qa2, x, "a")
    ch.confirm_delivery()
    ch.basic_publish(x, "a", b"for a")
    assert not routed(ch, x, "A")
    for q, n in ((qa, 1), (qb, 0), (qa2, 1)):
        assert_counts(ch, q, messages=n)


def test_fanout_ignores_routing_key(amqp, ch):
    x = amqp.exchange(ch, "fanout")
    queues = [amqp.queue(ch) for _ in range(3)]
    for i, q in enumerate(queues):
        ch.queue_bind(q, x, f"key{i}")
    ch.confirm_delivery()
    ch.basic_publish(x, "whatever", b"all")
    for q in queues:
        assert_counts(ch, q, messages=1)


def test_exchange_to_exchange_binding(amqp, ch):
    source = amqp.exchange(ch, "direct")
    destination = amqp.exchange(ch, "fanout")
    q = amqp.queue(ch)
    ch.queue_bind(q, destination)
    ch.exchange_bind(destination, source, "k")
    ch.confirm_delivery()
    assert routed(ch, source, "k")
    assert not routed(ch, source, "other")
    ch.exchange_unbind(destination, source, "k")
    assert not routed(ch, source, "k")
    assert_counts(ch, q, messages=1)


@pytest.mark.parametrize(
    "name,kind",
    [("amq.direct", "direct"), ("amq.fanout", "fanout"), ("amq.topic", "topic"), ("amq.headers", "headers"), ("amq.match", "headers")],
)
def test_predeclared_exchanges(ch, name, kind):
    ch.exchange_declare(name, passive=True)
    ch.exchange_declare(name, kind, durable=True)  # an equivalent redeclare is fine


def test_auto_delete_exchange_goes_with_its_last_binding(amqp, conn, ch):
    x = amqp.exchange(ch, "direct", auto_delete=True)
    q = amqp.queue(ch)
    ch.queue_bind(q, x, "k")
    ch.queue_unbind(q, x, "k")
    with channel_error(conn, ch, 404, f"NOT_FOUND - no exchange '{x}' in vhost '/'"):
        ch.exchange_declare(x, passive=True)
