#!/usr/bin/env bash
# Recovery time of 1 million queued persistent messages (issue 6), Warren and
# RabbitMQ in the same run.
#   scripts/bench-recovery.sh [messages] [body bytes]
# 1. Fills a Warren data directory (in-process, release build) and a durable
#    queue of a second RabbitMQ node started for this on 127.0.0.1:5674,
#    and times Broker::open on the directory (median of 3), via the ignored
#    test recovery_time_of_a_million_messages.
# 2. Starts the `warren` binary on that directory 3 times: its
#    "storage recovered ... elapsed_ms" line, and the time until it accepts
#    connections.
# 3. Restarts the RabbitMQ application 3 times (rabbitmqctl stop_app /
#    start_app) and times start_app until the queue reports every message.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}; size=${2:-16}
rabbit=${RABBITMQ_SH:-../shared/tools/rabbitmq.sh}
port=5674; node=warren-yardstick-$port@localhost
dir=$PWD/target/bench-recovery
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
rm -rf "$dir"; mkdir -p "$dir"
cargo build --release -q -p warren-broker
"$rabbit" start $port >/dev/null
trap '"$rabbit" stop $port' EXIT

WARREN_RECOVERY_MESSAGES=$n WARREN_RECOVERY_SIZE=$size WARREN_RECOVERY_DIR=$dir/data \
WARREN_RECOVERY_RABBIT_URL="amqp://guest:guest@127.0.0.1:$port/%2f" \
  cargo test --release -q -p warren-tests --test durability -- \
  --ignored recovery_time --nocapture 2>&1 | grep '^recovery_time'
du -sh "$dir/data"

for i in 1 2 3; do
  wport=$(free_port)
  start=$(date +%s.%N)
  ./target/release/warren --listen 127.0.0.1:$wport --data-dir "$dir/data" --log-level info \
    >"$dir/broker-$i.log" 2>&1 &
  pid=$!
  until (exec 3<>/dev/tcp/127.0.0.1/$wport) 2>/dev/null; do
    kill -0 $pid 2>/dev/null || { cat "$dir/broker-$i.log"; exit 1; }
    sleep 0.01
  done
  ready=$(date +%s.%N)
  kill -TERM $pid; wait $pid || true
  line=$(sed 's/\x1b\[[0-9;]*m//g' "$dir/broker-$i.log" | grep 'storage recovered' | sed 's/.*storage recovered //')
  echo "warren binary run $i: $line; accepting connections after $(echo "$ready - $start" | bc) s"
done

for i in 1 2 3; do
  rabbitmqctl -n "$node" -q stop_app >/dev/null
  start=$(date +%s.%N)
  rabbitmqctl -n "$node" -q start_app >/dev/null
  until rabbitmqctl -n "$node" -q list_queues name messages 2>/dev/null | grep -q "^recovery[[:space:]]*$n\$"; do
    sleep 0.1
  done
  echo "rabbitmq restart $i: $(echo "$(date +%s.%N) - $start" | bc) s until the queue reports $n messages"
done
