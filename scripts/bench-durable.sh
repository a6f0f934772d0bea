#!/usr/bin/env bash
# Durable publishing, Warren vs RabbitMQ in the same run (issue 6's bar):
# durable queue, delivery-mode 2, publisher confirms (window 100 per
# publisher), 1 consumer with manual acks; 1 and 4 publishers; 16 B and
# 1 KiB bodies; Warren with --fsync always (its default).
#   scripts/bench-durable.sh [runs] [seconds] [extra warren-load flags...]
# Each Warren run gets a fresh broker and data directory (under
# $BENCH_DIR, default target/bench-durable, on the same disk as RabbitMQ's
# state) so that the broker's "storage closed" line at shutdown gives the
# fsyncs of that run: fsyncs per confirmed message. Prints one JSON line
# per run and a table of medians.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}; secs=${2:-10}; shift $(( $# > 2 ? 2 : $# )) || true
cargo build --release -q -p warren-broker -p warren-benches
rabbit=${RABBITMQ_SH:-../shared/tools/rabbitmq.sh}
(exec 3<>/dev/tcp/127.0.0.1/5673) 2>/dev/null || "$rabbit" start >/dev/null
rabbit_pid=$(ss -ltnpH 'sport = :5673' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
bench_dir=${BENCH_DIR:-$PWD/target/bench-durable}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
out=$(mktemp)
warren_pid=
trap '[[ -n $warren_pid ]] && kill $warren_pid 2>/dev/null || true' EXIT

run_warren() { # label, warren-load flags...
  local label=$1; shift
  rm -rf "$bench_dir"; mkdir -p "$bench_dir"
  port=$(free_port)
  ./target/release/warren --listen 127.0.0.1:$port --data-dir "$bench_dir/data" \
    --fsync always --log-level info >"$bench_dir/broker.log" 2>&1 &
  warren_pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
  local json
  json=$(./target/release/warren-load --uri 127.0.0.1:$port -z "$secs" --pid "$warren_pid" \
    --json --label "$label" "$@")
  kill -TERM "$warren_pid"; wait "$warren_pid" || true; warren_pid=
  local fsyncs
  fsyncs=$(sed 's/\x1b\[[0-9;]*m//g' "$bench_dir/broker.log" | grep 'storage closed' \
    | grep -o ' fsyncs=[0-9]*' | cut -d= -f2)
  echo "${json%\}},\"fsyncs\":${fsyncs:-null}}" | tee -a "$out"
}

run_rabbit() { # label, warren-load flags...
  local label=$1; shift
  ./target/release/warren-load --uri 127.0.0.1:5673 -z "$secs" --pid "$rabbit_pid" \
    --json --label "$label" "$@" | tee -a "$out"
}

for i in $(seq "$runs"); do
  for size in 16 1024; do
    for pubs in 1 4; do
      flags=(-x "$pubs" -y 1 -s "$size" -c 100 -q 100 --persistent "$@")
      run_warren "warren s=$size x=$pubs" "${flags[@]}"
      run_rabbit "rabbitmq s=$size x=$pubs" "${flags[@]}"
    done
  done
done

python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
med = lambda xs: statistics.median(xs) if xs else 0
print("| scenario | Warren confirmed msg/s | RabbitMQ confirmed msg/s | ratio | Warren fsyncs/confirmed msg | Warren µs CPU/msg | RabbitMQ µs CPU/msg |")
print("|---|---|---|---|---|---|---|")
for size in (16, 1024):
    for pubs in (1, 4):
        w = [r for r in rows if r["label"] == f"warren s={size} x={pubs}"]
        r = [r for r in rows if r["label"] == f"rabbitmq s={size} x={pubs}"]
        wc, rc = med([x["confirmed_per_s"] for x in w]), med([x["confirmed_per_s"] for x in r])
        fpm = med([x["fsyncs"] / x["confirmed"] for x in w if x.get("fsyncs") and x["confirmed"]])
        wcpu = med([x["broker_cpu_us_per_msg"] for x in w if x["broker_cpu_us_per_msg"]])
        rcpu = med([x["broker_cpu_us_per_msg"] for x in r if x["broker_cpu_us_per_msg"]])
        print(f"| {size} B, {pubs} publisher{'s' if pubs > 1 else ''} | {wc:,.0f} | {rc:,.0f} | "
              f"**{wc / max(rc, 1):.1f}×** | {fpm:.4f} (1 per {1 / fpm if fpm else 0:,.0f}) | {wcpu:.2f} | {rcpu:.2f} |")
PY
