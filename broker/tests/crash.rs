//! Crash test: the `warren` binary is killed with SIGKILL at random
//! instants while a lapin client publishes persistent messages with
//! confirms, takes some messages and acks some of them. After every restart
//! on the same data directory:
//!
//! - every confirmed message that was not durably acked is in the queue
//!   exactly once, and the queue holds nothing that was never published;
//! - message ids come out in publish order;
//! - a message whose ack was followed by a confirmed publish on the same
//!   channel never comes back (the ack is logged before that publish);
//! - `redelivered` is set on every message whose delivery was followed by a
//!   confirmed publish (its DELIVERED marker is in the log), and on none that
//!   was never handed to a client.
//!
//! The kill instant is drawn from a seeded RNG; the seed is printed and can
//! be replayed with `WARREN_CRASH_SEED=<seed>`. `WARREN_CRASH_CYCLES`
//! overrides the number of kill/restart cycles (default 24, at least 20).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, VecDeque};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

const QUEUE: &str = "crash";
/// Longest wait for any single client operation.
const OP: Duration = Duration::from_secs(10);
/// Unconfirmed publishes in flight.
const WINDOW: usize = 32;
/// The whole test must finish within this.
const BUDGET: Duration = Duration::from_secs(110);

/// splitmix64: small, seedable, good enough to pick instants.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

/// What the client knows about one message that may be in the queue.
#[derive(Debug, Default, Clone)]
struct Msg {
    /// Confirmed by the broker, or seen after a restart: it must be there.
    confirmed: bool,
    /// Publish position (the id the next publish got) when the broker
    /// handed it to us, so when its DELIVERED marker was logged.
    delivered_at: Option<u64>,
    /// Publish position when we acked it.
    acked_at: Option<u64>,
    /// It came back `redelivered` once: its marker is on disk for good.
    marked: bool,
}

#[derive(Debug, Default)]
struct Model {
    /// Ids that may still be in the queue.
    msgs: BTreeMap<u64, Msg>,
    next_id: u64,
    /// Highest confirmed id so far (confirms come in order on one channel).
    max_confirmed: u64,
    // Statistics for the report.
    confirmed_total: u64,
    acked_durably_total: u64,
    lost_unconfirmed: u64,
    kept_unconfirmed: u64,
    acks_undone: u64,
}

impl Model {
    fn logged_before_a_confirm(&self, at: Option<u64>) -> bool {
        at.is_some_and(|p| self.max_confirmed >= p)
    }

    fn confirm(&mut self, id: u64) {
        if let Some(m) = self.msgs.get_mut(&id) {
            m.confirmed = true;
        }
        self.max_confirmed = self.max_confirmed.max(id);
        self.confirmed_total += 1;
    }

    fn delivered(&mut self, id: u64) {
        let at = self.next_id;
        if let Some(m) = self.msgs.get_mut(&id) {
            m.delivered_at.get_or_insert(at);
        }
    }

    fn acked(&mut self, id: u64) {
        let at = self.next_id;
        if let Some(m) = self.msgs.get_mut(&id) {
            m.acked_at = Some(at);
        }
    }

    /// Checks what a restarted broker holds (ids with their redelivered
    /// flag, in queue order) and settles every pending question.
    fn verify(&mut self, cycle: usize, present: &[(u64, bool)]) {
        for w in present.windows(2) {
            assert!(
                w[0].0 < w[1].0,
                "cycle {cycle}: ids out of publish order or duplicated: {} then {}",
                w[0].0,
                w[1].0
            );
        }
        let mut seen = present.iter().peekable();
        let mut next = BTreeMap::new();
        for (&id, m) in &self.msgs {
            let here = match seen.peek() {
                Some(&&(p, redelivered)) if p == id => {
                    seen.next();
                    Some(redelivered)
                }
                _ => None,
            };
            let acked_durably = self.logged_before_a_confirm(m.acked_at);
            match here {
                None => {
                    // An ack may survive a crash even when no confirm
                    // promised it.
                    assert!(
                        !m.confirmed || m.acked_at.is_some(),
                        "cycle {cycle}: confirmed message {id} is lost ({m:?}, highest confirmed {})",
                        self.max_confirmed
                    );
                    if acked_durably {
                        self.acked_durably_total += 1;
                    } else if !m.confirmed && m.acked_at.is_none() {
                        self.lost_unconfirmed += 1;
                    }
                }
                Some(redelivered) => {
                    assert!(
                        !acked_durably,
                        "cycle {cycle}: message {id} came back although its ack was followed by a confirmed publish ({m:?}, highest confirmed {})",
                        self.max_confirmed
                    );
                    if m.marked || self.logged_before_a_confirm(m.delivered_at) {
                        assert!(
                            redelivered,
                            "cycle {cycle}: message {id} was delivered before the crash but is not marked redelivered ({m:?})"
                        );
                    }
                    if !m.marked && m.delivered_at.is_none() {
                        assert!(
                            !redelivered,
                            "cycle {cycle}: message {id} was never delivered but is marked redelivered"
                        );
                    }
                    if !m.confirmed {
                        self.kept_unconfirmed += 1;
                    }
                    if m.acked_at.is_some() {
                        self.acks_undone += 1;
                    }
                    next.insert(
                        id,
                        Msg {
                            confirmed: true,
                            marked: redelivered,
                            ..Msg::default()
                        },
                    );
                }
            }
        }
        if let Some(&(id, _)) = seen.next() {
            panic!("cycle {cycle}: message {id} is in the queue but was never published or is gone for good");
        }
        self.msgs = next;
    }
}

struct Dirs {
    root: PathBuf,
    data: PathBuf,
}

impl Dirs {
    fn new() -> Dirs {
        let root = std::env::temp_dir().join(format!("warren-crash-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        Dirs {
            data: root.join("data"),
            root,
        }
    }

    fn log(&self, cycle: usize) -> PathBuf {
        self.root.join(format!("broker-{cycle}.log"))
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        } else {
            eprintln!("crash test: broker logs kept in {}", self.root.display());
        }
    }
}

/// Kills the broker when dropped, so that a failing test leaves no broker
/// behind.
struct Reaper(Arc<Mutex<Child>>);

impl Drop for Reaper {
    fn drop(&mut self) {
        let mut child = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Kills the broker (SIGKILL) after a delay, from a thread of its own so
/// that the instant is unrelated to what the client is doing.
struct Killer {
    child: Arc<Mutex<Child>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Killer {
    /// Starts the countdown, unless one is already running.
    fn arm(&mut self, delay: Duration) {
        if self.thread.is_some() {
            return;
        }
        let child = self.child.clone();
        self.thread = Some(std::thread::spawn(move || {
            std::thread::sleep(delay);
            // Child::kill sends SIGKILL on Unix.
            let _ = child.lock().unwrap().kill();
        }));
    }

    fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(dirs: &Dirs, cycle: usize, port: u16) -> Child {
    let log = std::fs::File::create(dirs.log(cycle)).unwrap();
    Command::new(env!("CARGO_BIN_EXE_warren"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(&dirs.data)
        .arg("--fsync")
        .arg("always")
        .arg("--log-level")
        .arg("info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn the warren binary")
}

/// Polls until the broker accepts connections; `false` if it exited first.
fn wait_listening(child: &Arc<Mutex<Child>>, addr: SocketAddr) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        if child.lock().unwrap().try_wait().unwrap().is_some() {
            return false;
        }
        assert!(
            Instant::now() < deadline,
            "broker did not listen on {addr} in time"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn body(id: u64) -> Vec<u8> {
    format!("message {id:012} of the crash test").into_bytes()
}

fn id_of(data: &[u8]) -> u64 {
    std::str::from_utf8(data)
        .ok()
        .and_then(|s| s.strip_prefix("message "))
        .and_then(|s| s.get(..12))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("foreign message body {data:?}"))
}

async fn op<T>(f: impl std::future::Future<Output = lapin::Result<T>>) -> Option<T> {
    match tokio::time::timeout(OP, f).await {
        Ok(Ok(v)) => Some(v),
        _ => None,
    }
}

/// Consumes everything in the queue (ack later); `None` if the broker died
/// on the way. Every delivery is noted in the model as it arrives.
async fn drain(ch: &Channel, model: &mut Model) -> Option<Vec<(u64, bool, u64)>> {
    let q = op(ch.queue_declare(
        QUEUE.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await?;
    let n = q.message_count() as usize;
    op(ch.basic_qos(0, BasicQosOptions::default())).await?;
    let mut consumer = op(ch.basic_consume(
        QUEUE.into(),
        "verify".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await?;
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let d = match tokio::time::timeout(OP, consumer.next()).await {
            Ok(Some(Ok(d))) => d,
            _ => return None,
        };
        let id = id_of(&d.data);
        model.delivered(id);
        got.push((id, d.redelivered, d.delivery_tag));
    }
    op(ch.basic_cancel("verify".into(), BasicCancelOptions::default())).await?;
    Some(got)
}

/// One life of the broker: verify what it recovered, ack some, requeue the
/// rest, then publish (and take and ack now and then) until it is killed.
/// Returns whether verification ran.
async fn life(
    addr: SocketAddr,
    cycle: usize,
    model: &mut Model,
    rng: &mut Rng,
    killer: &mut Killer,
    kill_delay: Duration,
) -> bool {
    let url = format!("amqp://guest:guest@{addr}/%2f");
    let Some(conn) = op(Connection::connect(&url, ConnectionProperties::default())).await else {
        return false;
    };
    let Some(ch) = op(conn.create_channel()).await else {
        return false;
    };
    if op(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .is_none()
    {
        return false;
    }
    let Some(got) = drain(&ch, model).await else {
        return false;
    };
    let present: Vec<(u64, bool)> = got.iter().map(|&(id, r, _)| (id, r)).collect();
    model.verify(cycle, &present);
    // Ack about a third; requeue the rest (they keep their markers).
    for &(id, _, tag) in &got {
        if rng.percent(35) {
            if op(ch.basic_ack(tag, BasicAckOptions::default()))
                .await
                .is_none()
            {
                return true;
            }
            model.acked(id);
        }
    }
    if let Some(&(_, _, last)) = got.last() {
        let requeue = BasicNackOptions {
            multiple: true,
            requeue: true,
        };
        if op(ch.basic_nack(last, requeue)).await.is_none() {
            return true;
        }
    }

    killer.arm(kill_delay);
    let props = BasicProperties::default().with_delivery_mode(2);
    let mut inflight: VecDeque<(u64, lapin::PublisherConfirm)> = VecDeque::new();
    let mut alive = true;
    while alive {
        let id = model.next_id;
        model.next_id += 1;
        model.msgs.insert(id, Msg::default());
        match op(ch.basic_publish(
            "".into(),
            QUEUE.into(),
            BasicPublishOptions::default(),
            &body(id),
            props.clone(),
        ))
        .await
        {
            Some(confirm) => inflight.push_back((id, confirm)),
            None => break,
        }
        while inflight.len() >= WINDOW {
            let (id, confirm) = inflight.pop_front().unwrap();
            match op(confirm).await {
                Some(c) if c.is_ack() => model.confirm(id),
                Some(c) => panic!("message {id} nacked: {c:?}"),
                None => {
                    alive = false;
                    break;
                }
            }
        }
        // Now and then take the oldest message; ack most of those.
        if alive && id.is_multiple_of(7) {
            match op(ch.basic_get(QUEUE.into(), BasicGetOptions::default())).await {
                Some(Some(m)) => {
                    let got = id_of(&m.delivery.data);
                    model.delivered(got);
                    if rng.percent(70) {
                        if op(ch.basic_ack(m.delivery.delivery_tag, BasicAckOptions::default()))
                            .await
                            .is_none()
                        {
                            break;
                        }
                        model.acked(got);
                    }
                }
                Some(None) => {}
                None => break,
            }
        }
    }
    // What was confirmed before the connection died still counts.
    let deadline = tokio::time::Instant::now() + OP;
    for (id, confirm) in inflight {
        match tokio::time::timeout_at(deadline, confirm).await {
            Ok(Ok(c)) if c.is_ack() => model.confirm(id),
            _ => {}
        }
    }
    drop(conn);
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_confirmed_message() {
    let seed = std::env::var("WARREN_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    let cycles: usize = std::env::var("WARREN_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    eprintln!("crash test: seed {seed} (replay with WARREN_CRASH_SEED={seed}), {cycles} cycles");
    let mut rng = Rng(seed);
    let dirs = Dirs::new();
    let mut model = Model {
        next_id: 1,
        ..Model::default()
    };
    let started = Instant::now();
    let mut verified = 0;
    let mut kills_in_startup = 0;
    for cycle in 0..cycles {
        assert!(
            started.elapsed() < BUDGET,
            "crash test over its time budget after {cycle} cycles"
        );
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let child = Arc::new(Mutex::new(spawn(&dirs, cycle, port)));
        let _reaper = Reaper(child.clone());
        let mut killer = Killer {
            child: child.clone(),
            thread: None,
        };
        // One cycle in six is killed while starting (recovering, maybe);
        // the others at a random instant of the publishing phase.
        if rng.percent(16) {
            kills_in_startup += 1;
            killer.arm(Duration::from_millis(rng.below(80)));
        }
        let listening = {
            let child = child.clone();
            tokio::task::spawn_blocking(move || wait_listening(&child, addr))
                .await
                .unwrap()
        };
        if listening {
            let delay = Duration::from_millis(5 + rng.below(600));
            if life(addr, cycle, &mut model, &mut rng, &mut killer, delay).await {
                verified += 1;
            }
        } else if killer.thread.is_none() {
            let status = child.lock().unwrap().wait().unwrap();
            panic!(
                "cycle {cycle}: broker exited on its own ({status}):\n{}",
                tail(&dirs.log(cycle))
            );
        }
        // If the client gave up before publishing, end the cycle now.
        killer.arm(Duration::ZERO);
        killer.join();
        let status = child.lock().unwrap().wait().unwrap();
        assert!(
            status.code().is_none(),
            "cycle {cycle}: broker exited by itself ({status}) instead of being killed:\n{}",
            tail(&dirs.log(cycle))
        );
    }

    // A last clean start checks the final state.
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = Arc::new(Mutex::new(spawn(&dirs, cycles, port)));
    let _reaper = Reaper(child.clone());
    let listening = {
        let child = child.clone();
        tokio::task::spawn_blocking(move || wait_listening(&child, addr))
            .await
            .unwrap()
    };
    assert!(
        listening,
        "final start failed:\n{}",
        tail(&dirs.log(cycles))
    );
    let url = format!("amqp://guest:guest@{addr}/%2f");
    let conn = op(Connection::connect(&url, ConnectionProperties::default()))
        .await
        .expect("connect");
    let ch = op(conn.create_channel()).await.expect("channel");
    let got = drain(&ch, &mut model).await.expect("drain");
    let present: Vec<(u64, bool)> = got.iter().map(|&(id, r, _)| (id, r)).collect();
    model.verify(cycles, &present);
    let _ = conn.close(200, "bye".into()).await;
    let _ = child.lock().unwrap().kill();
    let _ = child.lock().unwrap().wait();

    eprintln!(
        "crash test: seed {seed}: {cycles} kills ({kills_in_startup} during start-up), {verified} verified restarts, \
         {} published, {} confirmed, {} left in the queue, {} durably acked never came back, \
         {} acks undone by a crash, {} unconfirmed lost, {} unconfirmed kept, in {:.1} s",
        model.next_id - 1,
        model.confirmed_total,
        present.len(),
        model.acked_durably_total,
        model.acks_undone,
        model.lost_unconfirmed,
        model.kept_unconfirmed,
        started.elapsed().as_secs_f64()
    );
    assert!(verified >= cycles / 2, "too few cycles got to verify");
    assert!(model.confirmed_total > 0);
}
