//! One client interface over the two ways to reach Warren, so that a
//! scenario is written once and run through each: the in-process API
//! (`warren::embed`) and lapin over TCP.
//!
//! [`Env::start`] starts a broker for one scenario; [`Conn`], [`Chan`] and
//! [`Sub`] are enums over the two clients with the operations scenarios
//! need; [`Error`] carries the AMQP reply code whichever client raised it.
//! Every wait is bounded by [`WAIT`]: a scenario that would hang fails.
//!
//! With `WARREN_TEST_URL` set, the lapin runs go to that broker instead
//! (e.g. the reference RabbitMQ), which checks the scenarios themselves.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use lapin::options as lo;
use lapin::types::{AMQPValue, FieldTable as LapinTable, LongString};
use warren::embed;

use crate::TestBroker;

/// The longest any single wait in a scenario may take.
pub const WAIT: Duration = Duration::from_secs(5);

/// Awaits `f`, failing the test if it takes longer than [`WAIT`].
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// The client a scenario runs through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `warren::embed`, no socket.
    InProcess,
    /// lapin over TCP.
    Lapin,
}

/// An AMQP error from either client: the reply code and text, or code 0
/// for a client-side error (e.g. lapin refusing a call on a closed channel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: u16,
    pub text: String,
}

impl From<warren::AmqpError> for Error {
    fn from(e: warren::AmqpError) -> Error {
        Error {
            code: e.code.code(),
            text: e.reply_text(),
        }
    }
}

impl From<lapin::Error> for Error {
    fn from(e: lapin::Error) -> Error {
        match e.kind() {
            lapin::ErrorKind::ProtocolError(amqp) => Error {
                code: amqp.get_id(),
                text: amqp.get_message().to_string(),
            },
            other => Error {
                code: 0,
                text: format!("{other:?}"),
            },
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Asserts that `r` failed with reply code `code`; returns the error text.
#[track_caller]
pub fn expect_code<T: std::fmt::Debug>(r: Result<T>, code: u16) -> String {
    match r {
        Err(e) if e.code == code => e.text,
        other => panic!("expected AMQP error {code}, got {other:?}"),
    }
}

/// A broker for one scenario, reachable both ways.
pub struct Env {
    pub transport: Transport,
    pub tcp: TestBroker,
    /// Set unless the lapin runs go to an external broker.
    pub broker: Option<warren::Broker>,
}

impl Env {
    pub async fn start(transport: Transport) -> Env {
        let tcp = crate::start().await;
        let broker = tcp.broker().cloned();
        Env {
            transport,
            tcp,
            broker,
        }
    }

    /// A new connection through this scenario's transport.
    pub async fn connect(&self) -> Conn {
        self.connect_with(self.transport).await
    }

    /// A new connection through a given transport.
    pub async fn connect_with(&self, transport: Transport) -> Conn {
        match transport {
            Transport::InProcess => {
                let broker = self
                    .broker
                    .as_ref()
                    .expect("the in-process transport needs Warren, not WARREN_TEST_URL");
                Conn::InProcess(within("connect", broker.connect()).await.expect("connect"))
            }
            Transport::Lapin => Conn::Lapin(Box::new(within("connect", self.tcp.connect()).await)),
        }
    }

    /// A new connection with one open channel.
    pub async fn channel(&self) -> (Conn, Chan) {
        let conn = self.connect().await;
        let ch = conn.channel().await;
        (conn, ch)
    }

    pub async fn shutdown(self) {
        within("shutdown", self.tcp.shutdown()).await;
    }
}

pub enum Conn {
    InProcess(embed::Connection),
    Lapin(Box<lapin::Connection>),
}

impl Conn {
    pub async fn channel(&self) -> Chan {
        match self {
            Conn::InProcess(c) => Chan::InProcess(
                within("channel.open", c.open_channel())
                    .await
                    .expect("open channel"),
            ),
            Conn::Lapin(c) => Chan::Lapin(
                within("channel.open", c.create_channel())
                    .await
                    .expect("open channel"),
            ),
        }
    }

    pub async fn close(&self) {
        match self {
            Conn::InProcess(c) => within("connection.close", c.close()).await,
            Conn::Lapin(c) => {
                let _ = within("connection.close", c.close(200, "bye".into())).await;
            }
        }
    }
}

/// An argument value in a table (bindings, headers).
#[derive(Debug, Clone)]
pub enum Arg {
    Str(&'static str),
    Int(i64),
}

fn warren_table(args: &[(&str, Arg)]) -> embed::FieldTable {
    embed::FieldTable::from_entries(args.iter().map(|(k, v)| {
        let key = embed::ShortStr::try_from(*k).expect("short key");
        let value = match v {
            Arg::Str(s) => embed::FieldValue::LongStr(embed::LongStr::from(*s)),
            Arg::Int(i) => embed::FieldValue::I64(*i),
        };
        (key, value)
    }))
}

fn lapin_table(args: &[(&str, Arg)]) -> LapinTable {
    let mut t = LapinTable::default();
    for (k, v) in args {
        let value = match v {
            Arg::Str(s) => AMQPValue::LongString(LongString::from(*s)),
            Arg::Int(i) => AMQPValue::LongLongInt(*i),
        };
        t.insert((*k).into(), value);
    }
    t
}

/// queue.declare flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueFlags {
    pub passive: bool,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
}

/// What queue.declare answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    pub name: String,
    pub message_count: u32,
    pub consumer_count: u32,
}

/// A message as a scenario sees it.
#[derive(Debug, Clone)]
pub struct Msg {
    pub delivery_tag: u64,
    pub redelivered: bool,
    pub exchange: String,
    pub routing_key: String,
    pub body: Bytes,
}

impl Msg {
    fn from_embed(d: &embed::Delivery) -> Msg {
        Msg {
            delivery_tag: d.delivery_tag(),
            redelivered: d.redelivered(),
            exchange: d.exchange().to_string_lossy().into_owned(),
            routing_key: d.routing_key().to_string_lossy().into_owned(),
            body: d.body().clone(),
        }
    }

    fn from_lapin(d: lapin::message::Delivery) -> Msg {
        Msg {
            delivery_tag: d.delivery_tag,
            redelivered: d.redelivered,
            exchange: d.exchange.to_string(),
            routing_key: d.routing_key.to_string(),
            body: Bytes::from(d.data),
        }
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or("<not utf-8>")
    }
}

/// A publisher confirm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirm {
    pub ack: bool,
    /// The message came back as unroutable (mandatory) before the confirm.
    pub returned: bool,
}

/// A publish: where to, what, and how.
#[derive(Debug, Clone, Default)]
pub struct Publish<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub body: &'a [u8],
    pub headers: &'a [(&'a str, Arg)],
    pub mandatory: bool,
}

impl<'a> Publish<'a> {
    /// To the default exchange, i.e. straight to queue `queue`.
    pub fn to_queue(queue: &'a str, body: &'a [u8]) -> Publish<'a> {
        Publish {
            routing_key: queue,
            body,
            ..Publish::default()
        }
    }

    pub fn to(exchange: &'a str, routing_key: &'a str, body: &'a [u8]) -> Publish<'a> {
        Publish {
            exchange,
            routing_key,
            body,
            ..Publish::default()
        }
    }
}

pub enum Chan {
    InProcess(embed::Channel),
    Lapin(lapin::Channel),
}

impl Chan {
    pub async fn exchange_declare(&self, name: &str, kind: &str, durable: bool) -> Result<()> {
        within("exchange.declare", async {
            match self {
                Chan::InProcess(c) => {
                    let opts = embed::ExchangeDeclareOptions {
                        durable,
                        ..Default::default()
                    };
                    Ok(c.exchange_declare(name, kind, opts, Default::default())
                        .await?)
                }
                Chan::Lapin(c) => {
                    let kind = match kind {
                        "direct" => lapin::ExchangeKind::Direct,
                        "fanout" => lapin::ExchangeKind::Fanout,
                        "topic" => lapin::ExchangeKind::Topic,
                        "headers" => lapin::ExchangeKind::Headers,
                        other => lapin::ExchangeKind::Custom(other.to_string()),
                    };
                    let opts = lo::ExchangeDeclareOptions {
                        durable,
                        ..Default::default()
                    };
                    Ok(
                        c.exchange_declare(name.into(), kind, opts, LapinTable::default())
                            .await?,
                    )
                }
            }
        })
        .await
    }

    pub async fn queue_declare(&self, name: &str, flags: QueueFlags) -> Result<QueueInfo> {
        within("queue.declare", async {
            match self {
                Chan::InProcess(c) => {
                    let opts = embed::QueueDeclareOptions {
                        passive: flags.passive,
                        durable: flags.durable,
                        exclusive: flags.exclusive,
                        auto_delete: flags.auto_delete,
                    };
                    let q = c.queue_declare(name, opts, Default::default()).await?;
                    Ok(QueueInfo {
                        name: q.name,
                        message_count: q.message_count,
                        consumer_count: q.consumer_count,
                    })
                }
                Chan::Lapin(c) => {
                    let opts = lo::QueueDeclareOptions {
                        passive: flags.passive,
                        durable: flags.durable,
                        exclusive: flags.exclusive,
                        auto_delete: flags.auto_delete,
                        nowait: false,
                    };
                    let q = c
                        .queue_declare(name.into(), opts, LapinTable::default())
                        .await?;
                    Ok(QueueInfo {
                        name: q.name().to_string(),
                        message_count: q.message_count(),
                        consumer_count: q.consumer_count(),
                    })
                }
            }
        })
        .await
    }

    /// A plain queue (not durable, not exclusive).
    pub async fn declare(&self, name: &str) -> Result<QueueInfo> {
        self.queue_declare(name, QueueFlags::default()).await
    }

    /// Ready messages in `queue` (passive declare).
    pub async fn message_count(&self, queue: &str) -> Result<u32> {
        let flags = QueueFlags {
            passive: true,
            ..Default::default()
        };
        Ok(self.queue_declare(queue, flags).await?.message_count)
    }

    pub async fn queue_bind(
        &self,
        queue: &str,
        exchange: &str,
        key: &str,
        args: &[(&str, Arg)],
    ) -> Result<()> {
        within("queue.bind", async {
            match self {
                Chan::InProcess(c) => Ok(c
                    .queue_bind(queue, exchange, key, warren_table(args))
                    .await?),
                Chan::Lapin(c) => Ok(c
                    .queue_bind(
                        queue.into(),
                        exchange.into(),
                        key.into(),
                        lo::QueueBindOptions::default(),
                        lapin_table(args),
                    )
                    .await?),
            }
        })
        .await
    }

    pub async fn queue_unbind(
        &self,
        queue: &str,
        exchange: &str,
        key: &str,
        args: &[(&str, Arg)],
    ) -> Result<()> {
        within("queue.unbind", async {
            match self {
                Chan::InProcess(c) => Ok(c
                    .queue_unbind(queue, exchange, key, warren_table(args))
                    .await?),
                Chan::Lapin(c) => Ok(c
                    .queue_unbind(queue.into(), exchange.into(), key.into(), lapin_table(args))
                    .await?),
            }
        })
        .await
    }

    pub async fn queue_delete(&self, queue: &str) -> Result<u32> {
        within("queue.delete", async {
            match self {
                Chan::InProcess(c) => Ok(c.queue_delete(queue, Default::default()).await?),
                Chan::Lapin(c) => Ok(c
                    .queue_delete(queue.into(), lo::QueueDeleteOptions::default())
                    .await?),
            }
        })
        .await
    }

    pub async fn queue_purge(&self, queue: &str) -> Result<u32> {
        within("queue.purge", async {
            match self {
                Chan::InProcess(c) => Ok(c.queue_purge(queue).await?),
                Chan::Lapin(c) => Ok(c
                    .queue_purge(queue.into(), lo::QueuePurgeOptions::default())
                    .await?),
            }
        })
        .await
    }

    pub async fn qos(&self, prefetch: u16) -> Result<()> {
        within("basic.qos", async {
            match self {
                Chan::InProcess(c) => Ok(c.basic_qos(prefetch, false).await?),
                Chan::Lapin(c) => Ok(c
                    .basic_qos(prefetch, lo::BasicQosOptions::default())
                    .await?),
            }
        })
        .await
    }

    pub async fn confirm_select(&self) -> Result<()> {
        within("confirm.select", async {
            match self {
                Chan::InProcess(c) => Ok(c.confirm_select().await?),
                Chan::Lapin(c) => Ok(c
                    .confirm_select(lo::ConfirmSelectOptions::default())
                    .await?),
            }
        })
        .await
    }

    /// Publishes without waiting for a confirm.
    pub async fn publish(&self, p: Publish<'_>) -> Result<()> {
        self.send(p).await.map(drop)
    }

    /// Publishes on a channel in confirm mode and waits for the confirm. A
    /// channel error raised by the publish comes back here.
    pub async fn publish_confirmed(&self, p: Publish<'_>) -> Result<Confirm> {
        let pending = self.send(p).await?;
        within("publisher confirm", async {
            match pending {
                Sent::InProcess(c) => {
                    let o = c.outcome().await?;
                    Ok(Confirm {
                        ack: o.ack,
                        returned: o.returned.is_some(),
                    })
                }
                Sent::Lapin(c) => match c.await? {
                    lapin::Confirmation::Ack(r) => Ok(Confirm {
                        ack: true,
                        returned: r.is_some(),
                    }),
                    lapin::Confirmation::Nack(r) => Ok(Confirm {
                        ack: false,
                        returned: r.is_some(),
                    }),
                    lapin::Confirmation::NotRequested => Ok(Confirm {
                        ack: true,
                        returned: false,
                    }),
                },
            }
        })
        .await
    }

    async fn send(&self, p: Publish<'_>) -> Result<Sent> {
        within("basic.publish", async {
            match self {
                Chan::InProcess(c) => {
                    let properties = embed::BasicProperties {
                        headers: (!p.headers.is_empty()).then(|| warren_table(p.headers)),
                        ..Default::default()
                    };
                    let opts = embed::PublishOptions {
                        mandatory: p.mandatory,
                    };
                    let body = Bytes::copy_from_slice(p.body);
                    Ok(Sent::InProcess(
                        c.basic_publish(p.exchange, p.routing_key, opts, properties, body)
                            .await?,
                    ))
                }
                Chan::Lapin(c) => {
                    let mut properties = lapin::BasicProperties::default();
                    if !p.headers.is_empty() {
                        properties = properties.with_headers(lapin_table(p.headers));
                    }
                    let opts = lo::BasicPublishOptions {
                        mandatory: p.mandatory,
                        immediate: false,
                    };
                    Ok(Sent::Lapin(
                        c.basic_publish(
                            p.exchange.into(),
                            p.routing_key.into(),
                            opts,
                            p.body,
                            properties,
                        )
                        .await?,
                    ))
                }
            }
        })
        .await
    }

    /// Starts a consumer.
    pub async fn consume(&self, queue: &str, no_ack: bool) -> Result<Sub> {
        self.consume_with(queue, "", no_ack, false).await
    }

    pub async fn consume_with(
        &self,
        queue: &str,
        tag: &str,
        no_ack: bool,
        exclusive: bool,
    ) -> Result<Sub> {
        within("basic.consume", async {
            match self {
                Chan::InProcess(c) => {
                    let opts = embed::ConsumeOptions {
                        consumer_tag: tag.to_string(),
                        no_ack,
                        exclusive,
                        arguments: Default::default(),
                    };
                    Ok(Sub::InProcess(c.basic_consume(queue, opts).await?))
                }
                Chan::Lapin(c) => {
                    let opts = lo::BasicConsumeOptions {
                        no_local: false,
                        no_ack,
                        exclusive,
                        nowait: false,
                    };
                    Ok(Sub::Lapin(
                        c.basic_consume(queue.into(), tag.into(), opts, LapinTable::default())
                            .await?,
                    ))
                }
            }
        })
        .await
    }

    pub async fn cancel(&self, tag: &str) -> Result<()> {
        within("basic.cancel", async {
            match self {
                Chan::InProcess(c) => Ok(c.basic_cancel(tag).await?),
                Chan::Lapin(c) => Ok(c
                    .basic_cancel(tag.into(), lo::BasicCancelOptions::default())
                    .await?),
            }
        })
        .await
    }

    pub async fn get(&self, queue: &str, no_ack: bool) -> Result<Option<Msg>> {
        within("basic.get", async {
            match self {
                Chan::InProcess(c) => Ok(c
                    .basic_get(queue, no_ack)
                    .await?
                    .map(|d| Msg::from_embed(&d))),
                Chan::Lapin(c) => Ok(c
                    .basic_get(queue.into(), lo::BasicGetOptions { no_ack })
                    .await?
                    .map(|m| Msg::from_lapin(m.delivery))),
            }
        })
        .await
    }

    pub async fn ack(&self, tag: u64, multiple: bool) -> Result<()> {
        within("basic.ack", async {
            match self {
                Chan::InProcess(c) => Ok(c.basic_ack(tag, multiple).await?),
                Chan::Lapin(c) => Ok(c.basic_ack(tag, lo::BasicAckOptions { multiple }).await?),
            }
        })
        .await
    }

    pub async fn nack(&self, tag: u64, multiple: bool, requeue: bool) -> Result<()> {
        within("basic.nack", async {
            match self {
                Chan::InProcess(c) => Ok(c.basic_nack(tag, multiple, requeue).await?),
                Chan::Lapin(c) => Ok(c
                    .basic_nack(tag, lo::BasicNackOptions { multiple, requeue })
                    .await?),
            }
        })
        .await
    }

    pub async fn reject(&self, tag: u64, requeue: bool) -> Result<()> {
        within("basic.reject", async {
            match self {
                Chan::InProcess(c) => Ok(c.basic_reject(tag, requeue).await?),
                Chan::Lapin(c) => Ok(c
                    .basic_reject(tag, lo::BasicRejectOptions { requeue })
                    .await?),
            }
        })
        .await
    }

    pub async fn tx_select(&self) -> Result<()> {
        within("tx.select", async {
            match self {
                Chan::InProcess(c) => Ok(c.tx_select().await?),
                Chan::Lapin(c) => Ok(c.tx_select().await?),
            }
        })
        .await
    }

    pub async fn tx_commit(&self) -> Result<()> {
        within("tx.commit", async {
            match self {
                Chan::InProcess(c) => Ok(c.tx_commit().await?),
                Chan::Lapin(c) => Ok(c.tx_commit().await?),
            }
        })
        .await
    }

    pub async fn tx_rollback(&self) -> Result<()> {
        within("tx.rollback", async {
            match self {
                Chan::InProcess(c) => Ok(c.tx_rollback().await?),
                Chan::Lapin(c) => Ok(c.tx_rollback().await?),
            }
        })
        .await
    }

    pub async fn close(&self) -> Result<()> {
        within("channel.close", async {
            match self {
                Chan::InProcess(c) => Ok(c.close().await?),
                Chan::Lapin(c) => Ok(c.close(200, "bye".into()).await?),
            }
        })
        .await
    }
}

enum Sent {
    InProcess(embed::Confirmation),
    Lapin(lapin::PublisherConfirm),
}

/// A consumer's stream of deliveries.
pub enum Sub {
    InProcess(embed::Consumer),
    Lapin(lapin::Consumer),
}

impl Sub {
    pub fn tag(&self) -> String {
        match self {
            Sub::InProcess(c) => c.tag().to_string(),
            Sub::Lapin(c) => c.tag().to_string(),
        }
    }

    /// The next delivery, `None` once the consumer ended; fails the test
    /// if neither comes within [`WAIT`].
    pub async fn next(&mut self) -> Option<Msg> {
        within("a delivery", async {
            match self {
                Sub::InProcess(c) => c.next().await.map(|d| Msg::from_embed(&d)),
                Sub::Lapin(c) => match c.next().await {
                    Some(Ok(d)) => Some(Msg::from_lapin(d)),
                    Some(Err(_)) | None => None,
                },
            }
        })
        .await
    }

    /// The next delivery, which must come.
    pub async fn expect(&mut self) -> Msg {
        match self.next().await {
            Some(m) => m,
            None => panic!("the consumer ended while a delivery was expected"),
        }
    }

    /// The bodies of the next `n` deliveries, in order.
    pub async fn bodies(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.expect().await.text().to_string());
        }
        out
    }

    /// Waits for the stream to end; fails if a delivery comes instead.
    pub async fn expect_end(&mut self) {
        if let Some(m) = self.next().await {
            panic!("expected the consumer to end, got a delivery: {m:?}");
        }
    }
}
