//! The standalone `warren` broker.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;
use warren::{Broker, BrokerConfig, UserConfig};

/// Warren, an AMQP 0-9-1 message broker.
///
/// Every option can also come from the environment (WARREN_*) or from a
/// TOML config file; flags win over the environment, which wins over the file.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// TOML configuration file.
    #[arg(long, env = "WARREN_CONFIG")]
    config: Option<PathBuf>,
    /// Address to serve AMQP on (repeat for several). Default 127.0.0.1:5672.
    #[arg(long, env = "WARREN_LISTEN", value_delimiter = ',')]
    listen: Vec<String>,
    /// Log filter: error, warn, info, debug, trace, or a tracing filter.
    #[arg(long, env = "WARREN_LOG_LEVEL")]
    log_level: Option<String>,
    /// Data directory for durable state ("none" keeps everything in memory).
    #[arg(long, env = "WARREN_DATA_DIR")]
    data_dir: Option<String>,
    /// fsync policy: always, interval:<ms> or never.
    #[arg(long, env = "WARREN_FSYNC")]
    fsync: Option<String>,
    /// Heartbeat interval proposed to clients, in seconds (0 = off).
    #[arg(long, env = "WARREN_HEARTBEAT")]
    heartbeat: Option<u16>,
    /// Largest frame in bytes.
    #[arg(long, env = "WARREN_FRAME_MAX")]
    frame_max: Option<u32>,
    /// Highest channel number per connection.
    #[arg(long, env = "WARREN_CHANNEL_MAX")]
    channel_max: Option<u16>,
    /// Largest message body in bytes.
    #[arg(long, env = "WARREN_MAX_MESSAGE_SIZE")]
    max_message_size: Option<u64>,
    /// Most simultaneous connections.
    #[arg(long, env = "WARREN_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Resident memory above which publishers are blocked: bytes (512MiB,
    /// 2GB...), a fraction of the machine's memory (default 0.4, as
    /// RabbitMQ's high watermark), or none.
    #[arg(long, env = "WARREN_MEMORY_LIMIT")]
    memory_limit: Option<String>,
}

/// The config file: every field optional.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<Vec<String>>,
    log_level: Option<String>,
    data_dir: Option<String>,
    fsync: Option<String>,
    heartbeat: Option<u16>,
    frame_max: Option<u32>,
    channel_max: Option<u16>,
    max_message_size: Option<u64>,
    max_connections: Option<usize>,
    memory_limit: Option<String>,
    users: Option<Vec<FileUser>>,
    vhosts: Option<Vec<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct FileUser {
    name: String,
    password: String,
}

fn load_file(path: &Option<PathBuf>) -> Result<FileConfig, String> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("invalid config file {}: {e}", path.display()))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let file = match load_file(&args.config) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("warren: {e}");
            return ExitCode::from(2);
        }
    };
    let level = args
        .log_level
        .clone()
        .or(file.log_level.clone())
        .unwrap_or_else(|| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&level).unwrap_or_else(|_| "info".into()),
        )
        .init();

    let mut config = BrokerConfig::default();
    let limits = &mut config.limits;
    if let Some(h) = args.heartbeat.or(file.heartbeat) {
        limits.heartbeat = Duration::from_secs(u64::from(h));
    }
    if let Some(v) = args.frame_max.or(file.frame_max) {
        limits.frame_max = v;
    }
    if let Some(v) = args.channel_max.or(file.channel_max) {
        limits.channel_max = v;
    }
    if let Some(v) = args.max_message_size.or(file.max_message_size) {
        limits.max_message_size = v;
    }
    if let Some(v) = args.max_connections.or(file.max_connections) {
        limits.max_connections = v;
    }
    let memory_limit = args
        .memory_limit
        .or(file.memory_limit)
        .unwrap_or_else(|| "0.4".into());
    match warren::parse_memory_limit(&memory_limit) {
        Ok(limit) => limits.memory_limit = limit,
        Err(e) => {
            eprintln!("warren: --memory-limit: {e}");
            return ExitCode::from(2);
        }
    }
    if let Some(users) = file.users {
        config.users = users
            .into_iter()
            .map(|u| UserConfig {
                name: u.name,
                password: u.password,
            })
            .collect();
    }
    if let Some(vhosts) = file.vhosts {
        config.vhosts = vhosts;
    }
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| "./warren-data".into());
    // "none" (or "memory") keeps everything in memory.
    config.storage.data_dir = match data_dir.as_str() {
        "none" | "memory" | "" => None,
        dir => Some(PathBuf::from(dir)),
    };
    if let Some(fsync) = args.fsync.or(file.fsync) {
        match fsync.parse() {
            Ok(policy) => config.storage.fsync = policy,
            Err(e) => {
                eprintln!("warren: {e}");
                return ExitCode::from(2);
            }
        }
    }

    let mut listen = args.listen;
    if listen.is_empty() {
        listen = file.listen.unwrap_or_else(|| vec!["127.0.0.1:5672".into()]);
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("warren: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let broker = match Broker::open(config) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot open the data directory");
                eprintln!("warren: cannot open the data directory: {e}");
                return ExitCode::FAILURE;
            }
        };
        for addr in &listen {
            if let Err(e) = broker.listen(addr.as_str()).await {
                tracing::error!(%addr, error = %e, "cannot listen");
                return ExitCode::FAILURE;
            }
        }
        wait_for_signal().await;
        tracing::info!("shutting down");
        broker.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
