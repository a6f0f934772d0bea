#!/usr/bin/env bash
# Queue features (issue 4): a queue with TTL, a priority queue and a queue
# with a length limit, each against a plain queue, on Warren and on RabbitMQ
# in the same run (alternating):
#   scripts/bench-queues.sh [runs] [seconds]
# 1 publisher, 1 consumer, manual acks, prefetch 100, 16-byte bodies.
#   plain     no arguments
#   ttl       x-message-ttl=60000 (every message carries an expiry)
#   priority  x-max-priority=10, messages spread over priorities 0..9
#   maxlen    x-max-length=1000 (drop-head when the consumer falls behind)
# Starts RabbitMQ on 127.0.0.1:5673 (../shared/tools/rabbitmq.sh) unless it
# is up, and Warren on 127.0.0.1:5682; prints one JSON line per run, then
# the medians and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}; secs=${2:-10}
cargo build --release -q -p warren-broker -p warren-benches
rabbit=${RABBITMQ_SH:-../shared/tools/rabbitmq.sh}
(exec 3<>/dev/tcp/127.0.0.1/5673) 2>/dev/null || "$rabbit" start >/dev/null
port=${WARREN_BENCH_PORT:-5682}
if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
  echo "port $port is taken (set WARREN_BENCH_PORT)" >&2; exit 1
fi
./target/release/warren --listen 127.0.0.1:$port --data-dir none --log-level warn &
warren_pid=$!
trap 'kill $warren_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
rabbit_pid=$(ss -ltnpH 'sport = :5673' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
out=$(mktemp)
kind_args() {
  case $1 in
    plain) ;;
    ttl) echo --queue-args x-message-ttl=60000 ;;
    priority) echo --queue-args x-max-priority=10 --priorities 10 ;;
    maxlen) echo --queue-args x-max-length=1000 ;;
  esac
}
for _ in $(seq "$runs"); do
  for kind in plain ttl priority maxlen; do
    # shellcheck disable=SC2046
    ./target/release/warren-load --uri 127.0.0.1:$port -z "$secs" --pid "$warren_pid" \
      --json --label "warren $kind" $(kind_args $kind) | tee -a "$out"
    # shellcheck disable=SC2046
    ./target/release/warren-load --uri 127.0.0.1:5673 -z "$secs" --pid "$rabbit_pid" \
      --json --label "rabbitmq $kind" $(kind_args $kind) | tee -a "$out"
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
def med(label, key):
    vs = [r[key] for r in rows if r["label"] == label and r.get(key) is not None]
    return statistics.median(vs) if vs else 0.0
kinds = ("plain", "ttl", "priority", "maxlen")
print("| queue | Warren consumed msg/s | RabbitMQ consumed msg/s | Warren / RabbitMQ | Warren vs its plain queue | RabbitMQ vs its plain queue | Warren CPU µs/msg | RabbitMQ CPU µs/msg |")
print("|---|---|---|---|---|---|---|---|")
for k in kinds:
    w, r = med("warren " + k, "consumed_per_s"), med("rabbitmq " + k, "consumed_per_s")
    wp, rp = med("warren plain", "consumed_per_s"), med("rabbitmq plain", "consumed_per_s")
    print("| %s | %.0f | %.0f | %.1f× | %.2f | %.2f | %.2f | %.2f |" % (
        k, w, r, w / max(r, 1), w / max(wp, 1), r / max(rp, 1),
        med("warren " + k, "broker_cpu_us_per_msg"), med("rabbitmq " + k, "broker_cpu_us_per_msg")))
# Per-run ratio of the priority queue to the plain queue (the issue's bar).
pl = [r["consumed_per_s"] for r in rows if r["label"] == "warren plain"]
pr = [r["consumed_per_s"] for r in rows if r["label"] == "warren priority"]
print("warren priority/plain per run:", [round(b / max(a, 1), 2) for a, b in zip(pl, pr)])
PY
