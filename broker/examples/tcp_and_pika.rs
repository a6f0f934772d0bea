//! An embedded broker that also serves AMQP over TCP, so that clients in
//! other languages reach the service's queues. The pika script in
//! `examples/README.md` talks to it.
//!
//! The service answers requests on the `greetings` queue in-process: for
//! each message it publishes a reply to the message's `reply_to` queue
//! (with the request's `correlation_id`), and acknowledges the request.
//! It runs until Ctrl-C, then shuts the broker down (TCP clients get 320
//! CONNECTION_FORCED) — or after N requests with `--requests N`.
//!
//! ```sh
//! cargo run -p warren-broker --example tcp_and_pika -- [ADDR:PORT | PORT] [--requests N]
//! ```
//! The default address is 127.0.0.1:5672 (user guest, password guest,
//! vhost `/`).

use bytes::Bytes;
use futures::StreamExt;
use warren::embed::{
    BasicProperties, ConsumeOptions, FieldTable, PublishOptions, QueueDeclareOptions,
};
use warren::{Broker, BrokerConfig};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut addr = "127.0.0.1:5672".to_string();
    let mut limit: Option<u64> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--requests" {
            limit = Some(args.next().ok_or("--requests needs a number")?.parse()?);
        } else if arg.parse::<u16>().is_ok() {
            addr = format!("127.0.0.1:{arg}");
        } else {
            addr = arg;
        }
    }

    let broker = Broker::new(BrokerConfig::default());
    let local = broker.listen(addr.as_str()).await?;
    println!("AMQP 0-9-1 on {local} (guest/guest, vhost /); Ctrl-C to stop");

    let conn = broker.connect().await?;
    let ch = conn.open_channel().await?;
    ch.queue_declare(
        "greetings",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await?;
    ch.basic_qos(16, false).await?;
    let mut requests = ch
        .basic_consume("greetings", ConsumeOptions::default())
        .await?;

    let mut served = 0u64;
    loop {
        let request = tokio::select! {
            r = requests.next() => r,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(request) = request else { break };
        let name = String::from_utf8_lossy(request.body()).into_owned();
        println!("request from a TCP client: {name:?}");
        if let Some(reply_to) = request.properties().reply_to.as_ref() {
            let props = BasicProperties {
                correlation_id: request.properties().correlation_id.clone(),
                content_type: Some(warren::embed::ShortStr::from_static("text/plain")),
                ..Default::default()
            };
            let reply = Bytes::from(format!("hello, {name}, from inside the service"));
            let reply_to = reply_to.to_string_lossy();
            ch.basic_publish("", &reply_to, PublishOptions::default(), props, reply)
                .await?;
        }
        request.ack().await?;
        served += 1;
        if limit.is_some_and(|n| served >= n) {
            break;
        }
    }
    println!("served {served} requests; shutting down");
    broker.shutdown().await;
    Ok(())
}
