#!/usr/bin/env bash
# FIFO queues (issue 5), two measurements against a release Warren:
#
#   scripts/bench-fifo.sh throughput [runs] [seconds]
#     A FIFO queue with 100 message groups and 4 consumers against a
#     standard queue with 4 consumers, alternating in the same run, same
#     messages (both carry the x-group-id header): 1 publisher, manual
#     acks, prefetch 100, 16-byte bodies. Prints the medians and the ratio.
#
#   scripts/bench-fifo.sh dedup [messages]
#     Broker RSS growth per message for [messages] (default 1,000,000)
#     published with distinct message-ids and no consumer, on a fresh
#     broker each: a standard queue, a FIFO queue without ids (no dedup
#     state), a FIFO queue with ids (5-minute window). The difference of the
#     last two is what remembering one id costs.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-throughput}
cargo build --release -q -p warren-broker -p warren-benches
port=${WARREN_BENCH_PORT:-5681}
load=./target/release/warren-load
warren_pid=
stop_warren() {
  if [[ -n $warren_pid ]]; then
    kill "$warren_pid" 2>/dev/null || true
    wait "$warren_pid" 2>/dev/null || true
  fi
  warren_pid=
}
start_warren() {
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
    echo "port $port is taken (set WARREN_BENCH_PORT)" >&2; exit 1
  fi
  ./target/release/warren --listen 127.0.0.1:$port --data-dir none --log-level warn &
  warren_pid=$!
  for _ in $(seq 100); do
    kill -0 "$warren_pid" 2>/dev/null || { echo "warren exited" >&2; exit 1; }
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && return
    sleep 0.1
  done
  echo "warren did not start" >&2; exit 1
}
trap stop_warren EXIT
out=$(mktemp)

case $mode in
throughput)
  runs=${2:-5}; secs=${3:-10}
  start_warren
  common=(--uri 127.0.0.1:$port -x 1 -y 4 -q 100 -s 16 -z "$secs" --groups 100 --pid "$warren_pid" --json)
  for _ in $(seq "$runs"); do
    $load "${common[@]}" --label standard | tee -a "$out"
    $load "${common[@]}" --label fifo --queue-args x-queue-type=fifo | tee -a "$out"
  done
  python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
med = {}
for label in ("standard", "fifo"):
    rs = [r for r in rows if r["label"] == label]
    med[label] = {k: statistics.median([r[k] for r in rs if r.get(k) is not None] or [0])
                  for k in ("consumed_per_s", "published_per_s", "broker_cpu_us_per_msg")}
    med[label]["p99_us"] = statistics.median([r["latency_us"]["p99"] for r in rs])
    print(label, "runs:", [round(r["consumed_per_s"]) for r in rs], "median:", {k: round(v, 3) for k, v in med[label].items()})
print("fifo/standard consumed/s: %.2f" % (med["fifo"]["consumed_per_s"] / max(med["standard"]["consumed_per_s"], 1)))
PY
  ;;
dedup)
  n=${2:-1000000}
  rss() { awk '/^VmRSS/ {print $2}' /proc/"$warren_pid"/status; }
  common=(--uri 127.0.0.1:$port -x 1 -y 0 -s 16 -C "$n" -z 600 --keep --json)
  for kind in standard fifo-no-ids fifo-ids; do
    case $kind in
      standard) extra=(--message-ids) ;;
      fifo-no-ids) extra=(--queue-args x-queue-type=fifo) ;;
      fifo-ids) extra=(--message-ids --queue-args x-queue-type=fifo,x-deduplication-window=300000) ;;
    esac
    start_warren
    before=$(rss)
    $load "${common[@]}" --label "$kind" "${extra[@]}" >/dev/null
    sleep 3 # let the broker take in what is still in flight
    after=$(rss)
    echo "{\"label\":\"$kind\",\"rss_before_kb\":$before,\"rss_after_kb\":$after,\"messages\":$n}" | tee -a "$out"
    stop_warren
  done
  python3 - "$out" <<'PY'
import json, sys
rows = {r["label"]: r for r in (json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{"))}
g = {}
for k, r in rows.items():
    g[k] = (r["rss_after_kb"] - r["rss_before_kb"]) * 1024 / r["messages"]
    print("%-12s rss %d -> %d KiB  growth %.1f B/message" % (k, r["rss_before_kb"], r["rss_after_kb"], g[k]))
print("dedup state per id (fifo-ids - fifo-no-ids): %.1f B" % (g["fifo-ids"] - g["fifo-no-ids"]))
print("fifo with ids vs standard with ids, per message: %+.1f B" % (g["fifo-ids"] - g["standard"]))
PY
  ;;
*) echo "usage: $0 throughput [runs] [seconds] | dedup [messages]" >&2; exit 2 ;;
esac
