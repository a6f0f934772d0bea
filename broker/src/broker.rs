//! The broker handle: shared state, listeners and shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::{mpsc, watch};

use crate::alarm::MemoryAlarm;
use crate::config::BrokerConfig;
use crate::core::link::ConnectionId;
use crate::core::vhost::VHost;
use crate::server;
use crate::store::recovery;
use crate::store::Persistence;
use warren_persistence::StoreError;

/// State every connection of one broker shares. Nothing here is global to
/// the process, so several brokers can run side by side.
pub(crate) struct BrokerShared {
    pub config: BrokerConfig,
    pub vhosts: HashMap<String, Arc<VHost>>,
    next_connection: AtomicU64,
    pub connections: AtomicUsize,
    /// Flips to true once shutdown starts; every task watches it.
    pub shutdown: watch::Sender<bool>,
    /// Each task holds a clone; shutdown waits until all are dropped.
    task_guard: Mutex<Option<mpsc::Sender<()>>>,
    tasks_done: tokio::sync::Mutex<mpsc::Receiver<()>>,
    pub store: Option<Arc<Persistence>>,
    pub alarm: Arc<MemoryAlarm>,
}

impl BrokerShared {
    pub fn next_connection_id(&self) -> ConnectionId {
        ConnectionId(self.next_connection.fetch_add(1, Ordering::Relaxed))
    }

    /// A guard for a task that shutdown must wait for; `None` once shutdown began.
    pub fn task_guard(&self) -> Option<mpsc::Sender<()>> {
        self.task_guard.lock().clone()
    }
}

/// An AMQP 0-9-1 broker. Cheap to clone; all clones are the same broker.
#[derive(Clone)]
pub struct Broker {
    pub(crate) shared: Arc<BrokerShared>,
}

impl Broker {
    /// Builds a broker from its configuration. It serves nothing until
    /// [`Broker::listen`] is called or in-process connections are opened.
    pub fn new(config: BrokerConfig) -> Broker {
        Broker::build(config, None)
    }

    /// Builds a broker that keeps durable state as `config.storage` says:
    /// it opens (and locks) the data directory and restores what was there.
    pub fn open(config: BrokerConfig) -> Result<Broker, StoreError> {
        let started = std::time::Instant::now();
        let store = Persistence::open(&config.storage)?;
        let broker = Broker::build(config, Some(store.clone()));
        let found = recovery::restore(&store, &broker.shared.vhosts)?;
        tracing::info!(
            exchanges = found.exchanges,
            queues = found.queues,
            bindings = found.bindings,
            messages = found.messages,
            dropped = found.dropped,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "storage recovered"
        );
        Ok(broker)
    }

    fn build(config: BrokerConfig, store: Option<Arc<Persistence>>) -> Broker {
        let vhosts = config
            .vhosts
            .iter()
            .map(|name| (name.clone(), VHost::new(name, store.clone())))
            .collect();
        let (guard, done) = mpsc::channel(1);
        let shared = BrokerShared {
            alarm: MemoryAlarm::new(
                config.limits.memory_limit,
                config.limits.memory_paging_ratio,
                store.clone(),
            ),
            config,
            vhosts,
            next_connection: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            shutdown: watch::Sender::new(false),
            task_guard: Mutex::new(Some(guard)),
            tasks_done: tokio::sync::Mutex::new(done),
            store,
        };
        Broker {
            shared: Arc::new(shared),
        }
    }

    /// Serves AMQP on `addr` until shutdown; returns the bound address (so
    /// `127.0.0.1:0` picks a free port). May be called for several addresses.
    pub async fn listen(&self, addr: impl ToSocketAddrs) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let Some(guard) = self.shared.task_guard() else {
            return Err(std::io::Error::other("broker is shutting down"));
        };
        tokio::spawn(server::accept_loop(self.shared.clone(), listener, guard));
        tracing::info!(%local, "listening for AMQP 0-9-1");
        Ok(local)
    }

    /// Counters of the durable log since the broker started (fsyncs, bytes
    /// written, live and on-disk bytes…); `None` for [`Broker::new`].
    pub fn storage_stats(&self) -> Option<warren_persistence::StoreStats> {
        self.shared.store.as_ref().map(|s| s.stats())
    }

    /// Changes the memory limit (bytes; `None` lifts it), as
    /// `rabbitmqctl set_vm_memory_high_watermark` does.
    pub fn set_memory_limit(&self, limit: Option<u64>) {
        self.shared.alarm.set_limit(limit);
    }

    /// Whether the memory alarm is on: the resident set is above the limit
    /// and publishers are held back.
    pub fn memory_alarm(&self) -> bool {
        self.shared.alarm.is_on()
    }

    /// The memory alarm's state, to wait for it to change.
    pub fn watch_memory_alarm(&self) -> watch::Receiver<bool> {
        self.shared.alarm.subscribe()
    }

    /// Closes every connection with 320 CONNECTION_FORCED, stops the
    /// listeners (releasing their ports) and returns once all are gone.
    pub async fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
        drop(self.shared.task_guard.lock().take());
        let mut done = self.shared.tasks_done.lock().await;
        // Returns None once every task's guard is dropped.
        while done.recv().await.is_some() {}
        if let Some(store) = &self.shared.store {
            store.close();
        }
    }
}
