#!/usr/bin/env bash
# End-to-end throughput, Warren vs RabbitMQ in the same run (issue 3's bar):
# 1 publisher, 1 consumer, manual acks, prefetch 100, 16-byte bodies.
#   scripts/bench-e2e.sh [runs] [seconds] [extra warren-load flags...]
# Starts RabbitMQ on 127.0.0.1:5673 (../shared/tools/rabbitmq.sh) and Warren
# on 127.0.0.1:5680; prints one JSON line per run and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}; secs=${2:-10}; shift $(( $# > 2 ? 2 : $# )) || true
cargo build --release -q -p warren-broker -p warren-benches
rabbit=${RABBITMQ_SH:-../shared/tools/rabbitmq.sh}
# Reuse a node that is already up (other runs may be using it).
(exec 3<>/dev/tcp/127.0.0.1/5673) 2>/dev/null || "$rabbit" start >/dev/null
./target/release/warren --listen 127.0.0.1:5680 --data-dir none --log-level warn &
warren_pid=$!
trap 'kill $warren_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/5680) 2>/dev/null && break; sleep 0.1; done
# The pid of whatever listens on 5673 (the pid file is gone if the node was
# started by an earlier run whose state dir was wiped).
rabbit_pid=$(ss -ltnpH 'sport = :5673' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
out=$(mktemp)
for i in $(seq "$runs"); do
  ./target/release/warren-load --uri 127.0.0.1:5680 -z "$secs" --pid "$warren_pid" --json --label warren "$@" | tee -a "$out"
  ./target/release/warren-load --uri 127.0.0.1:5673 -z "$secs" --pid "$rabbit_pid" --json --label rabbitmq "$@" | tee -a "$out"
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
med = {}
for label in ("warren", "rabbitmq"):
    rs = [r for r in rows if r["label"] == label]
    med[label] = {k: statistics.median([r[k] for r in rs if r[k] is not None] or [0])
                  for k in ("published_per_s", "consumed_per_s", "broker_cpu_us_per_msg")}
    med[label]["p99"] = statistics.median([r["latency_us"]["p99"] for r in rs])
    print(label, {k: round(v, 3) for k, v in med[label].items()})
w, r = med["warren"], med["rabbitmq"]
print("ratio consumed/s warren/rabbitmq: %.2f" % (w["consumed_per_s"] / max(r["consumed_per_s"], 1)))
if w["broker_cpu_us_per_msg"]:
    print("ratio cpu/msg rabbitmq/warren: %.2f" % (r["broker_cpu_us_per_msg"] / w["broker_cpu_us_per_msg"]))
PY
