//! A service that embeds Warren and runs a pool of workers on an in-process
//! queue.
//!
//! A producer publishes jobs to the `jobs` queue (with publisher confirms);
//! N workers, each on its own channel with a prefetch limit, consume them,
//! do the work, publish the result to the `results` queue and acknowledge
//! the job. The main task collects the results, then shuts the broker
//! down. No socket anywhere: every message is passed in memory.
//!
//! ```sh
//! cargo run --release -p warren-broker --example worker_pool -- [WORKERS] [JOBS]
//! ```

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use warren::embed::{
    BasicProperties, Channel, ConsumeOptions, FieldTable, PublishOptions, QueueDeclareOptions,
    ShortStr,
};
use warren::{AmqpError, Broker, BrokerConfig};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let workers: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(4);
    let jobs: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);

    let broker = Broker::new(BrokerConfig::default());
    let conn = broker.connect().await?;
    let setup = conn.open_channel().await?;
    for queue in ["jobs", "results"] {
        setup
            .queue_declare(queue, QueueDeclareOptions::default(), FieldTable::default())
            .await?;
    }

    // The pool: each worker has its own channel, so acks and prefetch are
    // per worker, and the queue hands jobs out round-robin.
    let mut pool = Vec::new();
    for id in 0..workers {
        let ch = conn.open_channel().await?;
        ch.basic_qos(64, false).await?;
        pool.push(tokio::spawn(worker(id, ch)));
    }

    // Collect results while the producer publishes.
    let results = conn.open_channel().await?;
    let opts = ConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let mut collected = results.basic_consume("results", opts).await?;
    let started = Instant::now();
    let producer = tokio::spawn(produce(conn.open_channel().await?, jobs));

    let mut sum = 0u64;
    let mut per_worker = vec![0u64; workers];
    for _ in 0..jobs {
        let Some(result) = tokio::time::timeout(Duration::from_secs(30), collected.next()).await?
        else {
            return Err("the results consumer ended early".into());
        };
        let (worker, value) = parse_result(result.body())?;
        if let Some(count) = per_worker.get_mut(worker) {
            *count += 1;
        }
        sum = sum.wrapping_add(value);
    }
    let elapsed = started.elapsed();
    producer.await??;

    println!(
        "{jobs} jobs by {workers} workers in {elapsed:.2?} ({:.0} jobs/s), checksum {sum}",
        jobs as f64 / elapsed.as_secs_f64()
    );
    for (id, n) in per_worker.iter().enumerate() {
        println!("  worker {id}: {n} jobs");
    }

    // Shutdown closes every connection: the workers' streams end.
    broker.shutdown().await;
    for w in pool {
        w.await??;
    }
    Ok(())
}

/// Publishes `jobs` jobs and waits for the broker to confirm each.
async fn produce(ch: Channel, jobs: u64) -> Result<(), AmqpError> {
    ch.confirm_select().await?;
    let mut confirms = Vec::with_capacity(1024);
    for n in 0..jobs {
        let props = BasicProperties {
            content_type: Some(ShortStr::from_static("text/plain")),
            ..Default::default()
        };
        let body = Bytes::from(n.to_string());
        confirms.push(
            ch.basic_publish("", "jobs", PublishOptions::default(), props, body)
                .await?,
        );
        // Keep at most ~1000 confirms outstanding.
        if confirms.len() == 1024 {
            for c in confirms.drain(..) {
                if !c.await? {
                    return Err(AmqpError::internal("job nacked by the broker"));
                }
            }
        }
    }
    for c in confirms {
        if !c.await? {
            return Err(AmqpError::internal("job nacked by the broker"));
        }
    }
    Ok(())
}

/// Consumes jobs until the broker shuts down.
async fn worker(id: usize, ch: Channel) -> Result<(), AmqpError> {
    let mut jobs = ch.basic_consume("jobs", ConsumeOptions::default()).await?;
    while let Some(job) = jobs.next().await {
        let n: u64 = std::str::from_utf8(job.body())
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let result = format!("{id} {}", collatz_steps(n));
        ch.basic_publish(
            "",
            "results",
            PublishOptions::default(),
            BasicProperties::default(),
            Bytes::from(result),
        )
        .await?;
        job.ack().await?;
    }
    Ok(())
}

/// The work: a little arithmetic per job.
fn collatz_steps(mut n: u64) -> u64 {
    let mut steps = 0;
    while n > 1 && steps < 1000 {
        n = if n.is_multiple_of(2) {
            n / 2
        } else {
            3 * n + 1
        };
        steps += 1;
    }
    steps
}

fn parse_result(body: &[u8]) -> Result<(usize, u64), Error> {
    let text = std::str::from_utf8(body)?;
    let (worker, value) = text.split_once(' ').ok_or("malformed result")?;
    Ok((worker.parse()?, value.parse()?))
}
