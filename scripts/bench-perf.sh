#!/usr/bin/env bash
# Issue 8's scenarios, Warren vs RabbitMQ in the same run, with the load
# generator's own ceiling (warren-load sink) for the end-to-end rows.
#   scripts/bench-perf.sh [runs=3] [seconds=5] [rows...]
# rows (default: all): startup idle publish e2e noack fanout persistent
#   latency churn backlog backlog-limit
# Environment:
#   RABBIT_PORT   dedicated RabbitMQ node for this run (default 5674); it is
#                 started (3 times for the start-up row) and stopped here, with
#                 a raised file limit for the 10 k connections. The shared node
#                 on 5673 is never touched.
#   WARREN_PORT, SINK_PORT  loopback ports for Warren and the sink (default
#                 5695, 5699); they must be free (checked).
#   IDLE_CONNS    connections for the idle row (default 10000)
#   BACKLOG       messages for the backlog/recovery row (default 1000000)
#   BIG_BACKLOG   1 KiB messages for the backlog-limit row (default 1000000),
#                 queued in Warren run with --memory-limit MEMORY_LIMIT_MIB
#                 (default 256): a backlog 4 times the limit
#   WARREN_BIN    the broker binary to measure (default: the one built here,
#                 target/release/warren), to compare two builds
#   OUT           directory for the raw JSON lines and the summary
#                 (default target/bench-perf)
# Everything listens on 127.0.0.1. Each warren-load run is bounded by -z.
set -euo pipefail
cd "$(dirname "$0")/.."

# summary FILE: medians per row and target, ratios and the issue's bars.
summary() {
python3 - "$1" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    target, _, row = r["label"].partition(":")
    rows.setdefault(row, {}).setdefault(target, []).append(r)

def med(row, target, key, sub=None):
    vals = []
    for r in rows.get(row, {}).get(target, []):
        v = r.get(key)
        if sub is not None and isinstance(v, dict):
            v = v.get(sub)
        if isinstance(v, (int, float)):
            vals.append(v)
    return statistics.median(vals) if vals else None

def fmt(v, unit=""):
    if v is None:
        return "–"
    if abs(v) >= 100:
        s = f"{v:,.0f}"
    elif abs(v) >= 10:
        s = f"{v:.1f}"
    else:
        s = f"{v:.2f}"
    return s + unit

out = ["| row | metric | Warren | RabbitMQ | sink (flood / relay) | ratio | bar | met |", "|---|---|---|---|---|---|---|---|"]
def line(row, metric, w, r, sink=None, ratio=None, bar="", met=None, unit=""):
    out.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
        row, metric, fmt(w, unit), fmt(r, unit), sink if isinstance(sink, str) else fmt(sink, unit),
        "–" if ratio is None else f"{ratio:.2f}×", bar,
        "" if met is None else ("yes" if met else "**no**")))
def div(a, b):
    return a / b if a is not None and b else None

if "startup" in rows:
    w, r = med("startup", "warren", "amqp_ms"), med("startup", "rabbitmq", "amqp_ms")
    line("start-up, empty", "ms to AMQP open-ok", w, r, ratio=div(r, w), bar="< 50 ms", met=w is not None and w < 50)
if "idle" in rows:
    w, r = med("idle", "warren", "broker_rss_per_conn_kb"), med("idle", "rabbitmq", "broker_rss_per_conn_kb")
    n = med("idle", "warren", "connections"), med("idle", "rabbitmq", "connections")
    line("idle connections (%s / %s held)" % (fmt(n[0]), fmt(n[1])), "RSS KiB per connection", w, r, ratio=div(r, w), bar="≤ RabbitMQ/5", met=None if not (w and r) else w <= r / 5)
for s in ("16", "1024"):
    row = "publish-" + s
    if row not in rows:
        continue
    w, r = med(row, "warren", "broker_cpu_us_per_published"), med(row, "rabbitmq", "broker_cpu_us_per_published")
    line(f"publish only, {s} B", "broker CPU µs/msg", w, r, ratio=div(r, w), bar="≤ RabbitMQ/10", met=None if not (w and r) else w <= r / 10)
    line(f"publish only, {s} B", "published msg/s", med(row, "warren", "published_per_s"), med(row, "rabbitmq", "published_per_s"), med(row, "sink", "published_per_s"),
         ratio=div(med(row, "warren", "published_per_s"), med(row, "rabbitmq", "published_per_s")))
    line(f"publish only, {s} B", "RSS growth B per queued msg", med(row, "warren", "broker_rss_growth_b_per_queued"), med(row, "rabbitmq", "broker_rss_growth_b_per_queued"))
for kind, name in (("e2e", "end-to-end, ack, prefetch 100"), ("noack", "end-to-end, no-ack")):
    for s in ("16", "1024"):
        row = f"{kind}-{s}"
        if row not in rows:
            continue
        w, r = med(row, "warren", "broker_cpu_us_per_msg"), med(row, "rabbitmq", "broker_cpu_us_per_msg")
        line(f"{name}, {s} B", "broker CPU µs/msg", w, r, ratio=div(r, w), bar="≤ RabbitMQ/15", met=None if not (w and r) else w <= r / 15)
        wc, rc = med(row, "warren", "consumed_per_s"), med(row, "rabbitmq", "consumed_per_s")
        # The generator's ceiling: against the flooding sink (consumed, and
        # no more than it published) and against the relaying sink.
        sc, sp = med(row, "sink", "consumed_per_s"), med(row, "sink", "published_per_s")
        flood = min(sc, sp) if sc and sp else sc
        relay = med(row, "relay", "consumed_per_s")
        ceil = max([v for v in (flood, relay) if v] or [0]) or None
        line(f"{name}, {s} B", "consumed msg/s", wc, rc, "%s / %s" % (fmt(flood), fmt(relay)), ratio=div(wc, rc),
             bar="≥ 80%% of sink (%s)" % ("%.0f%%" % (100 * wc / ceil) if wc and ceil else "–"), met=None if not (wc and ceil) else wc >= 0.8 * ceil)
        line(f"{name}, {s} B", "p99 latency ms", div(med(row, "warren", "latency_us", "p99"), 1000), div(med(row, "rabbitmq", "latency_us", "p99"), 1000))
if "fanout-10" in rows:
    row = "fanout-10"
    w, r = med(row, "warren", "broker_cpu_us_per_delivered"), med(row, "rabbitmq", "broker_cpu_us_per_delivered")
    line("fan-out to 10 queues, 16 B", "broker CPU µs/delivered msg", w, r, ratio=div(r, w), bar="≤ RabbitMQ/10", met=None if not (w and r) else w <= r / 10)
    line("fan-out to 10 queues, 16 B", "delivered msg/s", med(row, "warren", "consumed_per_s"), med(row, "rabbitmq", "consumed_per_s"), ratio=div(med(row, "warren", "consumed_per_s"), med(row, "rabbitmq", "consumed_per_s")))
    line("fan-out to 10 queues, 16 B", "published msg/s", med(row, "warren", "published_per_s"), med(row, "rabbitmq", "published_per_s"))
if "persistent" in rows:
    row = "persistent"
    w, r = med(row, "warren", "confirmed_per_s"), med(row, "rabbitmq", "confirmed_per_s")
    line("persistent, confirms, fsync always", "confirmed msg/s", w, r, ratio=div(w, r), bar="≥ 3× RabbitMQ", met=None if not (w and r) else w >= 3 * r)
    line("persistent, confirms, fsync always", "consumed msg/s", med(row, "warren", "consumed_per_s"), med(row, "rabbitmq", "consumed_per_s"))
    w, r = med(row, "warren", "broker_cpu_us_per_msg"), med(row, "rabbitmq", "broker_cpu_us_per_msg")
    line("persistent, confirms, fsync always", "broker CPU µs/msg", w, r, ratio=div(r, w))
if "latency-10k" in rows:
    row = "latency-10k"
    for p in ("p50", "p99", "p999"):
        w, r = div(med(row, "warren", "latency_us", p), 1000), div(med(row, "rabbitmq", "latency_us", p), 1000)
        if p == "p99":
            line("latency at 10 k msg/s", p + " ms", w, r, ratio=div(r, w), bar="≤ RabbitMQ/2", met=None if not (w and r) else w <= r / 2)
        else:
            line("latency at 10 k msg/s", p + " ms", w, r, ratio=div(r, w))
    line("latency at 10 k msg/s", "broker CPU µs/msg", med(row, "warren", "broker_cpu_us_per_msg"), med(row, "rabbitmq", "broker_cpu_us_per_msg"))
if "churn" in rows:
    w, r = med("churn", "warren", "connections_per_s"), med("churn", "rabbitmq", "connections_per_s")
    line("connection churn", "connections/s", w, r, ratio=div(w, r), bar="≥ 5× RabbitMQ", met=None if not (w and r) else w >= 5 * r)
    w, r = med("churn", "warren", "broker_cpu_us_per_conn"), med("churn", "rabbitmq", "broker_cpu_us_per_conn")
    line("connection churn", "broker CPU µs/connection", w, r, ratio=div(r, w))
if "backlog" in rows:
    n = med("backlog", "warren", "published")
    w, r = med("backlog-rss", "warren", "broker_rss_kb"), med("backlog-rss", "rabbitmq", "broker_rss_kb")
    line("backlog of %s persistent 16 B" % fmt(n), "broker RSS MiB", div(w, 1024), div(r, 1024), ratio=div(r, w), bar="≤ RabbitMQ/10", met=None if not (w and r) else w <= r / 10)
    line("backlog of %s persistent 16 B" % fmt(n), "publish (confirmed) msg/s", med("backlog", "warren", "confirmed_per_s"), med("backlog", "rabbitmq", "confirmed_per_s"))
    w, r = med("recovery", "warren", "amqp_ms"), med("recovery", "rabbitmq", "amqp_ms")
    line("start-up with the backlog", "ms to AMQP open-ok", w, r, ratio=div(r, w), bar="reported")
if "backlog-limit" in rows:
    n = med("backlog-limit", "warren", "confirmed")
    lim = med("backlog-limit-rss", "warren", "limit_kb")
    label = "backlog of %s persistent 1 KiB, memory limit %s MiB" % (fmt(n), fmt(div(lim, 1024)))
    line(label, "publish (confirmed) msg/s", med("backlog-limit", "warren", "confirmed_per_s"), None)
    w = med("backlog-limit-rss", "warren", "broker_rss_kb")
    line(label, "broker RSS MiB, full backlog", div(w, 1024), None, bar="< limit", met=None if not (w and lim) else w < lim)
    w = med("backlog-limit-restart", "warren", "broker_rss_kb")
    line(label, "broker RSS MiB after a restart", div(w, 1024), None, bar="< limit", met=None if not (w and lim) else w < lim)
print("\n".join(out))
PY
}
if [ "${1:-}" = --summary ]; then summary "$2"; exit; fi
runs=${1:-3}; secs=${2:-5}; shift $(( $# > 2 ? 2 : $# )) || true
rows=${*:-startup idle publish e2e noack fanout persistent latency churn backlog backlog-limit}
RPORT=${RABBIT_PORT:-5674}
IDLE_CONNS=${IDLE_CONNS:-10000}
BACKLOG=${BACKLOG:-1000000}
BIG_BACKLOG=${BIG_BACKLOG:-1000000}
MEMORY_LIMIT_MIB=${MEMORY_LIMIT_MIB:-256}
OUT=${OUT:-target/bench-perf}
WPORT=${WARREN_PORT:-5695}; SPORT=${SINK_PORT:-5699}
if [ "$RPORT" = 5673 ]; then echo "use a dedicated port, not the shared 5673" >&2; exit 2; fi
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Something else on one of our ports would be measured instead of us.
for p in "$RPORT" "$WPORT" "$SPORT"; do
  if port_open "$p"; then echo "127.0.0.1:$p is in use; pick another port" >&2; exit 1; fi
done

# 10 k connections need 10 k descriptors in the load generator and the broker.
want=$((IDLE_CONNS + 1000))
if [ "$(ulimit -n)" -lt "$want" ]; then ulimit -n "$(ulimit -Hn)" || true; fi
if [ "$(ulimit -n)" -lt "$want" ]; then
  echo "ulimit -n is $(ulimit -n); lowering IDLE_CONNS" >&2
  IDLE_CONNS=$(( $(ulimit -n) - 1000 ))
fi
nofile=$(ulimit -n)

cargo build --release -q -p warren-broker -p warren-benches
L=./target/release/warren-load
W=${WARREN_BIN:-./target/release/warren}
mkdir -p "$OUT"
res=$OUT/results-$(date +%Y%m%d-%H%M%S).jsonl
: >"$res"
tmp=$(mktemp -d /tmp/warren-bench-perf.XXXXXX)

# --- the dedicated RabbitMQ node ------------------------------------------
rbase=/tmp/warren-bench-rabbitmq-$RPORT
rnode=warren-bench-$RPORT@localhost
rabbit_env() {
  export RABBITMQ_NODENAME=$rnode RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT=$RPORT RABBITMQ_DIST_PORT=$((RPORT + 20000))
  export RABBITMQ_MNESIA_BASE=$rbase/mnesia RABBITMQ_LOG_BASE=$rbase/log
  export RABBITMQ_PID_FILE=$rbase/pid RABBITMQ_ENABLED_PLUGINS_FILE=$rbase/enabled_plugins
  export RABBITMQ_CONFIG_FILE=$rbase/rabbitmq
}
rabbit_started=
rabbit_stop() {
  [ -n "$rabbit_started" ] || return 0
  (rabbit_env; timeout 60 rabbitmqctl -n "$rnode" -q stop >/dev/null 2>&1) || true
  for _ in $(seq 100); do port_open "$RPORT" || break; sleep 0.1; done
  rabbit_started=
}
# rabbit_start LABEL [keep-state]: starts the node (wiping its state unless
# keep-state), records the start-up time under LABEL, sets rabbit_pid.
rabbit_start() {
  if ! command -v rabbitmq-server >/dev/null; then
    # A fresh machine: install Debian's package, as ../shared/tools/rabbitmq.sh does.
    echo "installing rabbitmq-server (Debian package)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
  fi
  if port_open "$RPORT"; then echo "127.0.0.1:$RPORT is already in use" >&2; exit 1; fi
  if [ "${2:-}" != keep-state ]; then
    rm -rf "$rbase"; mkdir -p "$rbase/log" "$rbase/mnesia"
    echo '[].' >"$rbase/enabled_plugins"
    printf 'loopback_users = none\nlisteners.tcp.default = 127.0.0.1:%s\n' "$RPORT" >"$rbase/rabbitmq.conf"
    if id rabbitmq >/dev/null 2>&1; then chown -R rabbitmq:rabbitmq "$rbase"; fi
  fi
  local cmd=(sh -c "ulimit -n $nofile; exec /usr/lib/rabbitmq/bin/rabbitmq-server")
  if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then
    cmd=(su rabbitmq -s /bin/sh -c "cd /var/lib/rabbitmq; ulimit -n $nofile; exec /usr/lib/rabbitmq/bin/rabbitmq-server")
  fi
  rabbit_started=1
  (rabbit_env; $L startup --keep --uri "127.0.0.1:$RPORT" --timeout 120 --log "$rbase/log/console.log" \
      --json --label "rabbitmq:$1" -- "${cmd[@]}") | tee -a "$res"
  rabbit_pid=$(ss -ltnpH "sport = :$RPORT" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
}

# --- Warren and the sink -------------------------------------------------------
warren_pid=; sink_pid=
warren_stop() { if [ -n "$warren_pid" ]; then kill "$warren_pid" 2>/dev/null || true; wait "$warren_pid" 2>/dev/null || true; warren_pid=; fi; }
sink_stop() { if [ -n "$sink_pid" ]; then kill "$sink_pid" 2>/dev/null || true; wait "$sink_pid" 2>/dev/null || true; sink_pid=; fi; }
# warren_start [extra warren flags]: a fresh broker on WPORT.
warren_start() {
  warren_stop
  if port_open "$WPORT"; then echo "127.0.0.1:$WPORT is in use" >&2; exit 1; fi
  $W --listen "127.0.0.1:$WPORT" --log-level warn "$@" &
  warren_pid=$!
  # (Up to a minute: recovering a backlog of 10 M messages takes seconds.)
  for _ in $(seq 6000); do port_open "$WPORT" && return 0; sleep 0.01; done
  echo "warren did not start" >&2; exit 1
}
sink_start() { # size
  sink_stop
  if port_open "$SPORT"; then echo "127.0.0.1:$SPORT is in use" >&2; exit 1; fi
  $L sink --listen "127.0.0.1:$SPORT" -s "$1" -z 900 "${@:2}" 2>/dev/null &
  sink_pid=$!
  for _ in $(seq 200); do port_open "$SPORT" && return 0; sleep 0.01; done
  echo "sink did not start" >&2; exit 1
}
cleanup() { warren_stop; sink_stop; if [ -n "$rabbit_started" ]; then rabbit_stop; rm -rf "$rbase"; fi; rm -rf "$tmp"; }
trap cleanup EXIT

# load ROW TARGET [flags]: one warren-load run; TARGET is warren, rabbitmq or sink.
load() {
  local row=$1 target=$2; shift 2
  local uri pid=()
  case $target in
    warren) uri=127.0.0.1:$WPORT; pid=(--pid "$warren_pid") ;;
    rabbitmq) uri=127.0.0.1:$RPORT; pid=(--pid "$rabbit_pid") ;;
    sink|relay) uri=127.0.0.1:$SPORT; pid=(--pid "$sink_pid") ;;
  esac
  timeout "${LOAD_TIMEOUT:-$((secs + 240))}" $L --uri "$uri" "${pid[@]}" --json --label "$target:$row" "$@" | tee -a "$res" \
    || echo "{\"label\":\"$target:$row\",\"mode\":\"failed\"}" | tee -a "$res"
}
# traffic ROW [flags]: RUNS x (warren, rabbitmq), alternating; one Warren per row.
traffic() {
  local row=$1; shift
  warren_start --data-dir none
  for _ in $(seq "$runs"); do
    load "$row" warren -z "$secs" "$@"
    load "$row" rabbitmq -z "$secs" "$@"
  done
  warren_stop
}
# ceiling ROW SIZE [flags]: RUNS against the sink (flooding consumers).
ceiling() {
  local row=$1 size=$2; shift 2
  sink_start "$size"
  for _ in $(seq "$runs"); do load "$row" sink -z "$secs" -s "$size" "$@"; done
  sink_stop
}
# relay_ceiling ROW SIZE [flags]: RUNS against the sink in --relay mode.
relay_ceiling() {
  local row=$1 size=$2; shift 2
  sink_start "$size" --relay
  for _ in $(seq "$runs"); do load "$row" relay -z "$secs" -s "$size" "$@"; done
  sink_stop
}
has() { [[ " $rows " == *" $1 "* ]]; }

echo "# $(date -u +%FT%TZ) $(uname -r) $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/machine.txt"

# Start-up (empty) and idle connections, each on a freshly started broker.
if has startup || has idle; then
  for i in $(seq "$runs"); do
    $L startup --uri "127.0.0.1:$WPORT" --json --label warren:startup -- \
      $W --listen "127.0.0.1:$WPORT" --data-dir none --log-level warn | tee -a "$res"
    rabbit_start startup
    if has idle; then
      warren_start --data-dir none
      load idle warren --idle --connections "$IDLE_CONNS" -x 64 -z 3
      warren_stop
      load idle rabbitmq --idle --connections "$IDLE_CONNS" -x 64 -z 3
    fi
    if [ "$i" -lt "$runs" ]; then rabbit_stop; fi
  done
else
  rabbit_start boot
fi

if has publish; then
  for s in 16 1024; do
    traffic "publish-$s" -x 1 -y 0 -s "$s"
    ceiling "publish-$s" "$s" -x 1 -y 0
  done
fi
if has e2e; then
  for s in 16 1024; do
    traffic "e2e-$s" -x 1 -y 1 -q 100 -s "$s"
    ceiling "e2e-$s" "$s" -x 1 -y 1 -q 100
    relay_ceiling "e2e-$s" "$s" -x 1 -y 1 -q 100
  done
fi
if has noack; then
  for s in 16 1024; do
    traffic "noack-$s" -x 1 -y 1 -a -s "$s"
    ceiling "noack-$s" "$s" -x 1 -y 1 -a
    relay_ceiling "noack-$s" "$s" -x 1 -y 1 -a
  done
fi
if has fanout; then
  traffic fanout-10 -x 1 -y 1 -q 100 -s 16 --queues 10 -t fanout
fi
if has persistent; then
  # Warren on disk with fsync always; RabbitMQ's durable classic queue
  # confirms persistent messages once they are fsynced.
  warren_start --data-dir "$tmp/persistent" --fsync always
  for _ in $(seq "$runs"); do
    load persistent warren -z "$secs" -x 1 -y 1 -q 100 -s 16 --persistent -c 1000
    load persistent rabbitmq -z "$secs" -x 1 -y 1 -q 100 -s 16 --persistent -c 1000
  done
  warren_stop; rm -rf "$tmp/persistent"
fi
if has latency; then
  traffic latency-10k -x 1 -y 1 -q 100 -s 16 -r 10000
fi
if has churn; then
  warren_start --data-dir none
  for _ in $(seq "$runs"); do
    load churn warren --churn -x 16 -z "$secs"
    load churn rabbitmq --churn -x 16 -z "$secs"
  done
  warren_stop
fi
if has backlog && [ "$BACKLOG" -gt 0 ]; then
  # BACKLOG persistent 16-byte messages in a durable queue (published with
  # confirms, so they are on disk), the broker's RSS with them, then a
  # restart: time to accept connections with them (recovery).
  q=warren-bench-backlog
  warren_start --data-dir "$tmp/backlog" --fsync interval:200
  # (RabbitMQ takes minutes for millions of persistent messages.)
  LOAD_TIMEOUT=1800
  load backlog warren -x 1 -y 0 -s 16 --persistent -c 1000 -C "$BACKLOG" -u "$q" --keep -z 300
  warren_stop
  for _ in $(seq "$runs"); do
    $L startup --uri "127.0.0.1:$WPORT" --json --label warren:recovery -- \
      $W --listen "127.0.0.1:$WPORT" --data-dir "$tmp/backlog" --log-level warn | tee -a "$res"
  done
  warren_start --data-dir "$tmp/backlog"
  sleep 1
  echo "{\"label\":\"warren:backlog-rss\",\"mode\":\"rss\",\"broker_rss_kb\":$(awk '/VmRSS/{print $2}' "/proc/$warren_pid/status")}" | tee -a "$res"
  warren_stop; rm -rf "$tmp/backlog"
  load backlog rabbitmq -x 1 -y 0 -s 16 --persistent -c 1000 -C "$BACKLOG" -u "$q" --keep -z 1500
  sleep 1
  echo "{\"label\":\"rabbitmq:backlog-rss\",\"mode\":\"rss\",\"broker_rss_kb\":$(awk '/VmRSS/{print $2}' "/proc/$rabbit_pid/status")}" | tee -a "$res"
  rabbit_stop
  rabbit_start recovery keep-state
  # The queue is drained by deleting it with the node.
fi
if has backlog-limit && [ "$BIG_BACKLOG" -gt 0 ]; then
  # A persistent backlog several times the broker's memory limit: the
  # bodies stay on disk, the broker neither dies nor raises its alarm.
  q=warren-bench-backlog-limit
  warren_start --data-dir "$tmp/backlog-limit" --fsync interval:200 --memory-limit "${MEMORY_LIMIT_MIB}MiB"
  load backlog-limit warren -x 1 -y 0 -s 1024 --persistent -c 1000 -C "$BIG_BACKLOG" -u "$q" --keep -z 600
  limit_kb=$(( MEMORY_LIMIT_MIB * 1024 ))
  echo "{\"label\":\"warren:backlog-limit-rss\",\"mode\":\"rss\",\"limit_kb\":$limit_kb,\"broker_rss_kb\":$(awk '/VmRSS/{print $2}' "/proc/$warren_pid/status")}" | tee -a "$res"
  warren_stop
  warren_start --data-dir "$tmp/backlog-limit" --memory-limit "${MEMORY_LIMIT_MIB}MiB"
  sleep 1
  echo "{\"label\":\"warren:backlog-limit-restart\",\"mode\":\"rss\",\"broker_rss_kb\":$(awk '/VmRSS/{print $2}' "/proc/$warren_pid/status")}" | tee -a "$res"
  warren_stop; rm -rf "$tmp/backlog-limit"
fi
echo "# load at the end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
summary "$res" | tee "$OUT/summary.md"
echo "raw results: $res"
