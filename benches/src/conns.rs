//! Connection scenarios: many idle connections (`--idle --connections N`)
//! and connection churn (`--churn`), and the time a broker takes to start
//! accepting connections (`warren-load startup -- CMD...`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use warren_protocol::{FieldTable, Method, QueueDeclare, QueueDelete, ShortStr};

use crate::client::{Conn, Result};
use crate::{proc_cpu_ticks, proc_rss_kb, Args, Json};

/// Opening all the connections gives up after this long.
const OPEN_TIMEOUT: Duration = Duration::from_secs(180);

/// Opens `--connections` connections with a channel each (`-x` of them
/// in flight at a time, at least 16), holds them idle for `-z` seconds,
/// and reports the broker's RSS growth per connection.
pub async fn idle(args: &Args) -> Result<()> {
    let n = args.connections;
    let parallel = args.producers.clamp(16, 256);
    let rss_before = args.pid.and_then(proc_rss_kb);
    let cpu_before = args.pid.and_then(proc_cpu_ticks);
    let started = Instant::now();
    let deadline = started + OPEN_TIMEOUT;
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let mut tasks = Vec::new();
    for _ in 0..parallel {
        let (uri, next, failed, first_error) = (
            args.uri.clone(),
            next.clone(),
            failed.clone(),
            first_error.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut held = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < n as u64 && Instant::now() < deadline {
                match tokio::time::timeout(Duration::from_secs(10), Conn::open(&uri)).await {
                    Ok(Ok(mut c)) => {
                        // Nothing more is read from an idle connection.
                        c.rbuf = Default::default();
                        held.push(c);
                    }
                    Ok(Err(e)) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut f) = first_error.lock() {
                            f.get_or_insert_with(|| e.to_string());
                        }
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            held
        }));
    }
    let mut held = Vec::new();
    for t in tasks {
        held.append(&mut t.await?);
    }
    let open_secs = started.elapsed().as_secs_f64();
    let cpu_opened = args.pid.and_then(proc_cpu_ticks);
    // Let the broker settle (lazy allocations, GC) before reading its RSS.
    tokio::time::sleep(Duration::from_secs(args.duration.max(1))).await;
    let rss_held = args.pid.and_then(proc_rss_kb);
    let cpu_held = args.pid.and_then(proc_cpu_ticks);
    let opened = held.len();
    drop(held);

    let mut j = Json::new(&args.label, "idle");
    j.num("connections", opened as f64, 0);
    j.num("failed", failed.load(Ordering::Relaxed) as f64, 0);
    j.num("open_s", open_secs, 3);
    j.num("opened_per_s", opened as f64 / open_secs.max(1e-9), 0);
    j.opt("broker_rss_before_kb", rss_before.map(|v| v as f64), 0);
    j.opt("broker_rss_kb", rss_held.map(|v| v as f64), 0);
    let per_conn = match (rss_before, rss_held) {
        (Some(a), Some(b)) if opened > 0 => Some((b as f64 - a as f64) / opened as f64),
        _ => None,
    };
    j.opt("broker_rss_per_conn_kb", per_conn, 2);
    let cpu = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => Some((b - a) as f64 / 100.0),
        _ => None,
    };
    j.opt("broker_cpu_open_s", cpu(cpu_before, cpu_opened), 2);
    j.opt("broker_cpu_idle_s", cpu(cpu_opened, cpu_held), 2);
    if let Ok(Some(e)) = first_error.lock().map(|f| f.clone()) {
        j.str("first_error", &e);
    }
    j.print(args.json);
    Ok(())
}

/// `-x` loops of: connect, handshake, channel.open, queue.declare (the same
/// queue every time), connection.close and wait for close-ok; for `-z`
/// seconds. Reports connections per second and the broker's CPU per
/// connection.
pub async fn churn(args: &Args) -> Result<()> {
    let queue = ShortStr::try_from(
        args.queue
            .clone()
            .unwrap_or_else(|| format!("warren-load-churn-{}", std::process::id())),
    )?;
    let declare = Method::QueueDeclare(QueueDeclare {
        queue: queue.clone(),
        passive: false,
        durable: false,
        exclusive: false,
        auto_delete: false,
        no_wait: false,
        arguments: FieldTable::default(),
    });
    let mut setup = Conn::open(&args.uri).await?;
    setup.call(1, declare.clone()).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let cpu_before = args.pid.and_then(proc_cpu_ticks);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.producers.max(1) {
        let (uri, declare, stop, done, failed) = (
            args.uri.clone(),
            declare.clone(),
            stop.clone(),
            done.clone(),
            failed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let one = async {
                    let mut c = Conn::open(&uri).await?;
                    c.call(1, declare.clone()).await?;
                    c.close().await
                };
                match tokio::time::timeout(Duration::from_secs(10), one).await {
                    Ok(Ok(())) => done.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    let cpu_after = args.pid.and_then(proc_cpu_ticks);
    let rss = args.pid.and_then(proc_rss_kb);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
    }
    let _ = setup
        .call(
            1,
            Method::QueueDelete(QueueDelete {
                queue,
                if_unused: false,
                if_empty: false,
                no_wait: false,
            }),
        )
        .await;
    let cpu_s = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) => Some((b - a) as f64 / 100.0),
        _ => None,
    };
    let mut j = Json::new(&args.label, "churn");
    j.num("connections", n as f64, 0);
    j.num("failed", failed.load(Ordering::Relaxed) as f64, 0);
    j.num("connections_per_s", n as f64 / elapsed, 0);
    j.opt("broker_cpu_s", cpu_s, 2);
    j.opt(
        "broker_cpu_us_per_conn",
        cpu_s.map(|s| s * 1e6 / n.max(1) as f64),
        1,
    );
    j.opt("broker_rss_kb", rss.map(|v| v as f64), 0);
    j.print(args.json);
    Ok(())
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "warren-load startup",
    about = "Starts a broker and measures the time until it accepts AMQP connections"
)]
pub struct StartupArgs {
    /// Address the broker will listen on.
    #[arg(long, default_value = "127.0.0.1:5672")]
    uri: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Leave the broker running (default: SIGTERM it once measured, then
    /// SIGKILL if it is still there after 10 s).
    #[arg(long)]
    keep: bool,
    /// Append the broker's stdout and stderr to this file (default: discard).
    #[arg(long)]
    log: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[arg(long, default_value = "")]
    label: String,
    /// The broker's command line.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// Spawns the command, then tries to connect every millisecond; reports
/// the time to the first accepted TCP connection and to a completed AMQP
/// handshake (connection.open-ok and channel.open-ok).
pub async fn startup(args: StartupArgs) -> Result<()> {
    let (out, err) = match &args.log {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            (
                std::process::Stdio::from(f.try_clone()?),
                std::process::Stdio::from(f),
            )
        }
        None => (std::process::Stdio::null(), std::process::Stdio::null()),
    };
    let t0 = Instant::now();
    let mut child = std::process::Command::new(&args.command[0])
        .args(&args.command[1..])
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()?;
    let deadline = t0 + Duration::from_secs(args.timeout);
    let mut tcp_ms = None;
    let mut amqp_ms = None;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("broker exited before accepting connections: {status}").into());
        }
        if tcp_ms.is_none() && tokio::net::TcpStream::connect(&args.uri).await.is_ok() {
            tcp_ms = Some(t0.elapsed().as_secs_f64() * 1e3);
        }
        if tcp_ms.is_some() {
            if let Ok(Ok(c)) =
                tokio::time::timeout(Duration::from_secs(5), Conn::open(&args.uri)).await
            {
                amqp_ms = Some(t0.elapsed().as_secs_f64() * 1e3);
                let _ = c.close().await;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let pid = child.id();
    if !args.keep {
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until && matches!(child.try_wait(), Ok(None)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    let mut j = Json::new(&args.label, "startup");
    j.opt("tcp_ms", tcp_ms, 1);
    j.opt("amqp_ms", amqp_ms, 1);
    j.num("pid", pid as f64, 0);
    j.print(args.json);
    if amqp_ms.is_none() {
        return Err("the broker did not accept an AMQP connection in time".into());
    }
    Ok(())
}
