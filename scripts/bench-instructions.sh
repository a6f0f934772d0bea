#!/usr/bin/env bash
# Instructions per message in the broker (user space, counted by callgrind):
# a figure that does not move with the load on a shared machine, for
# comparing two builds of the hot path. The kernel's share (socket reads and
# writes) is not counted; `scripts/bench-perf.sh` measures CPU time.
#   scripts/bench-instructions.sh [messages=200000] [scenarios...]
# scenarios (default: all):
#   publish     publish only, 16 B, to a queue without consumers
#   noack-16    1 publisher, 1 no-ack consumer, 16 B
#   noack-1024  the same with 1 KiB bodies
#   ack-16      1 publisher, 1 consumer acking every message, prefetch 100
#   topic-10    a topic exchange bound to 10 queues (a no-ack consumer each)
# For each scenario a fresh broker runs under `valgrind --tool=callgrind`;
# a first load of MESSAGES/10 warms it up, the counters are zeroed, and a
# second load of MESSAGES is counted. Prints one line per scenario and
# keeps the callgrind files in target/bench-instructions/ (open them with
# callgrind_annotate to see where the instructions go).
# Environment: WARREN_PORT (default 5696), loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-200000}
shift || true
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(publish noack-16 noack-1024 ack-16 topic-10)
port=${WARREN_PORT:-5696}
out=target/bench-instructions
mkdir -p "$out"

if ! command -v valgrind >/dev/null; then
  echo "installing valgrind (Debian package)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
fi
cargo build --release -q -p warren-broker -p warren-benches
W=target/release/warren
L=target/release/warren-load

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pid=
stop() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; fi; }
trap stop EXIT

flags_for() {
  case $1 in
    publish) echo "-x 1 -y 0 -s 16" ;;
    noack-16) echo "-x 1 -y 1 -a -s 16" ;;
    noack-1024) echo "-x 1 -y 1 -a -s 1024" ;;
    ack-16) echo "-x 1 -y 1 -q 100 -s 16" ;;
    topic-10) echo "-x 1 -y 1 -a -s 16 -t topic --queues 10" ;;
    *) echo "unknown scenario $1" >&2; exit 2 ;;
  esac
}

printf '%-11s %10s %14s %12s\n' scenario messages instructions "per message"
for s in "${scenarios[@]}"; do
  flags=$(flags_for "$s")
  file="$out/callgrind.$s"
  rm -f "$file"*
  if port_open "$port"; then echo "127.0.0.1:$port is in use" >&2; exit 1; fi
  valgrind --tool=callgrind --compress-strings=no --callgrind-out-file="$file" \
    "$W" --listen "127.0.0.1:$port" --log-level warn --data-dir none 2>"$out/valgrind.$s.log" &
  pid=$!
  for _ in $(seq 3000); do port_open "$port" && break; sleep 0.02; done
  # Publish-only queues what it sends; the others drain it. -C bounds the
  # publishers, -z the whole run.
  # shellcheck disable=SC2086
  $L --uri "127.0.0.1:$port" $flags -C $((n / 10)) -z 600 --json >/dev/null
  callgrind_control -z "$pid" >/dev/null 2>&1
  # shellcheck disable=SC2086
  $L --uri "127.0.0.1:$port" $flags -C "$n" -z 600 --json >"$out/load.$s.json"
  callgrind_control -d "$pid" >/dev/null 2>&1
  stop
  # The requested dump is FILE.1 (FILE itself is what ran after it, at exit).
  ir=$(grep -m1 '^summary:' "$file.1" | awk '{print $2}')
  # Fan-out scenarios deliver more than they publish: count per published.
  printf '%-11s %10d %14d %12.0f\n' "$s" "$n" "$ir" "$(echo "$ir / $n" | bc -l)"
done
