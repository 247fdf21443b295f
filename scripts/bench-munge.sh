#!/usr/bin/env bash
# make bench-munge: measures in one run, each with the same number of
# concurrent clients, the same warm-up and the same measured duration:
#   1. MUNGE's own remunge --decode: encode+decode round trips through munged,
#      no network (the figure MUNGE publishes);
#   2. MUNGE-authenticated connections (tools/munge): a new TCP connection,
#      a credential encoded by the client through libmunge, sent, decoded by
#      the server through libmunge (uid, gid, payload and replay checked),
#      answered, closed;
#   3. the raw loopback rate of connect + one frame each way + close, and
#   4. momgate PING swaps through a real MOM daemon on new loopback
#      connections (3 and 4: momgate-bench run),
# and prints the rates and the ratios; and, as a reference without a goal,
#   5. the raw rate of the C client and server of 2 with MUNGE left out
#      (what the same exchange costs in C threads without the Go runtime).
#
# Usage: scripts/bench-munge.sh [BINDIR]   (default bin; needs momgate-bench,
#        momgate-server, momgate-mom, momgate-qmgr, munge-conn-server and
#        munge-conn-client there: `make bench-munge` builds them)
# Environment: BENCH_DURATION (default 5s per measurement), BENCH_WARMUP
#        (default 1s before each), BENCH_WORKERS (default: number of CPUs),
#        BENCH_MUNGED_THREADS (default 2, munged's own default),
#        BENCH_ROUNDS (default 1: all the measurements, repeated that many
#        times in the same order; on a loaded machine compare within a round),
#        BENCH_MUNGE_CHECK_ONLY=1 (only the self-checks of the MUNGE tools).
#
# tools/munge/install-deps.sh (run by make) installs munge, libmunge-dev, gcc.
# If they or the tools are missing, the MUNGE figures are reported as
# skipped, with why, and the momgate figures are still measured. munged runs
# as the current user on a socket, key, pid, log and seed file in a private
# temp dir; it and every server this script starts are stopped by pid on
# exit or interrupt, and the temp dir is removed.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-bin}
duration=${BENCH_DURATION:-5s}
warmup=${BENCH_WARMUP:-1s}
workers=${BENCH_WORKERS:-$(nproc)}
rounds=${BENCH_ROUNDS:-1}
munged_threads_want=${BENCH_MUNGED_THREADS:-2}
check_only=${BENCH_MUNGE_CHECK_ONLY:-}
secs=${duration%s}
wsecs=${warmup%s}
if ! [[ $secs =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
  echo "bench-munge: BENCH_DURATION=$duration: want whole seconds, e.g. 5s" >&2
  exit 2
fi
if ! [[ $wsecs =~ ^[0-9]+$ ]]; then
  echo "bench-munge: BENCH_WARMUP=$warmup: want whole seconds, e.g. 1s" >&2
  exit 2
fi
if ! [[ $workers =~ ^[0-9]+$ ]] || [ "$workers" -lt 1 ] || [ "$workers" -gt 255 ]; then
  echo "bench-munge: BENCH_WORKERS=$workers: want 1..255" >&2
  exit 2
fi
if ! [[ $munged_threads_want =~ ^[0-9]+$ ]] || [ "$munged_threads_want" -lt 1 ] || [ "$munged_threads_want" -gt 256 ]; then
  echo "bench-munge: BENCH_MUNGED_THREADS=$munged_threads_want: want 1..256" >&2
  exit 2
fi
if ! [[ $rounds =~ ^[0-9]+$ ]] || [ "$rounds" -lt 1 ] || [ "$rounds" -gt 20 ]; then
  echo "bench-munge: BENCH_ROUNDS=$rounds: want 1..20" >&2
  exit 2
fi
if [ -z "$check_only" ]; then
  for b in momgate-bench momgate-server momgate-mom momgate-qmgr; do
    if [ ! -x "$bin/$b" ]; then
      echo "bench-munge: $bin/$b not found: run make bench-munge (it builds them)" >&2
      exit 2
    fi
  done
fi

# Addresses: the MUNGE connection server listens on 127.0.80.4 and 127.0.80.5
# (the wrong-uid check); its clients connect from 127.83.t.i (momgate-bench
# uses 127.0.80.1-3, 127.81 and 127.82).
munge_ip=127.0.80.4
munge_check_ip=127.0.80.5
munge_src_base=83

tmp=$(mktemp -d "${TMPDIR:-/tmp}/momgate-bench-munge.XXXXXX")
# munged wants every directory above its socket traversable by all (a+x);
# nothing in it is readable by others.
chmod 711 "$tmp"
pids=()

stop_pid() {
  local pid=$1
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
  # Forget it, so that cleanup never signals a reused pid.
  local keep=() p
  for p in "${pids[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}
cleanup() {
  local p
  for p in "${pids[@]}"; do stop_pid "$p"; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "bench-munge: interrupted" >&2; exit 130' INT TERM

remunge_rate=0
remunge_note=""
conn_rate=0
conn_note=""
craw_rate=0
craw_note="not measured: needs the MUNGE connection tools"
check_failed=""

find_munge() {
  munged_bin=$(command -v munged || true)
  [ -z "$munged_bin" ] && [ -x /usr/sbin/munged ] && munged_bin=/usr/sbin/munged
  remunge_bin=$(command -v remunge || true)
  if [ -z "$munged_bin" ] || [ -z "$remunge_bin" ]; then
    remunge_note="skipped: munged or remunge not installed (Debian package munge; make bench-munge installs it as root)"
    conn_note=$remunge_note
    return 1
  fi
}

# Starts munged on a private socket; sets munged_sock.
start_munged() {
  munged_sock="$tmp/run/munge.socket"
  local key="$tmp/munge.key"
  mkdir -m 755 "$tmp/run"
  # A fresh 1 KiB key, owner-only, as mungekey would make.
  head -c 1024 /dev/urandom >"$key"
  chmod 600 "$key"
  local force=()
  # munged refuses some setups as root (and a socket dir it does not own)
  # unless forced; --force only relaxes those checks.
  [ "$(id -u)" = 0 ] && force=(--force)
  # munged's own default of 2 threads unless BENCH_MUNGED_THREADS says
  # otherwise: on the 2-CPU machine it gave the MUNGE connection its best
  # rate (4 or 8 threads were 15-20% slower: more contention, no more CPU).
  local threads=$munged_threads_want
  "$munged_bin" --foreground "${force[@]}" --socket="$munged_sock" --key-file="$key" \
    --num-threads="$threads" --pid-file="$tmp/munged.pid" --log-file="$tmp/munged.log" \
    --seed-file="$tmp/munged.seed" >"$tmp/munged.out" 2>&1 &
  munged_pid=$!
  pids+=("$munged_pid")
  for _ in $(seq 1 100); do
    [ -S "$munged_sock" ] && break
    kill -0 "$munged_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ ! -S "$munged_sock" ]; then
    remunge_note="skipped: munged did not start: $(cat "$tmp/munged.out" "$tmp/munged.log" 2>/dev/null | tail -n 2 | tr '\n' ' ')"
    conn_note=$remunge_note
    return 1
  fi
  munged_threads=$threads
}

# Starts a munge-conn-server on ip with extra flags; sets conn_pid, conn_addr
# and conn_out (its output file).
start_conn_server() {
  local ip=$1 name=$2
  shift 2
  conn_out="$tmp/$name.out"
  "$bin/munge-conn-server" --socket "$munged_sock" --listen "$ip:0" "$@" >"$conn_out" 2>&1 &
  conn_pid=$!
  pids+=("$conn_pid")
  conn_addr=""
  for _ in $(seq 1 100); do
    conn_addr=$(sed -nE 's/^listening ([0-9.]+:[0-9]+) .*/\1/p' "$conn_out")
    [ -n "$conn_addr" ] && return 0
    kill -0 "$conn_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench-munge: munge-conn-server did not start: $(tail -n 2 "$conn_out" | tr '\n' ' ')" >&2
  return 1
}

client() {
  "$bin/munge-conn-client" --socket "$munged_sock" --source-base "$munge_src_base" "$@"
}

# The tools must accept a good credential and refuse a replayed one, a
# garbage one and one of the wrong uid before their rate means anything.
self_check() {
  local m other_uid=65534
  [ "$(id -u)" = 65534 ] && other_uid=65533
  start_conn_server "$munge_ip" check-server --threads 1 || { check_failed="server did not start"; return 1; }
  for m in accept replay garbage; do
    if ! client --connect "$conn_addr" --check "$m" >>"$tmp/check.out" 2>&1; then
      check_failed="check $m: $(tail -n 1 "$tmp/check.out")"
    fi
  done
  stop_pid "$conn_pid"
  start_conn_server "$munge_check_ip" check-uid-server --threads 1 --uid "$other_uid" --gid "$other_uid" \
    --payload "other:other" || { check_failed="server did not start"; return 1; }
  if ! client --connect "$conn_addr" --check refuse >>"$tmp/check.out" 2>&1; then
    check_failed="check refuse (wrong uid): $(tail -n 1 "$tmp/check.out")"
  fi
  stop_pid "$conn_pid"
  sed 's/^/bench-munge: self-check: /' "$tmp/check.out" >&2
  if [ -n "$check_failed" ]; then
    conn_note="skipped: self-check failed: $check_failed"
    return 1
  fi
}

measure_remunge() {
  local cmd=("$remunge_bin" --socket="$munged_sock" --decode --num-threads="$workers")
  # The same warm-up as every other figure, in a run of its own.
  if [ "$wsecs" -gt 0 ]; then "${cmd[@]}" --duration="$wsecs" >/dev/null 2>&1 || true; fi
  echo "bench-munge: ${cmd[*]} --duration=$secs" >&2
  if ! "${cmd[@]}" --duration="$secs" >"$tmp/remunge.out" 2>&1; then
    remunge_note="skipped: remunge failed: $(tail -n 2 "$tmp/remunge.out" | tr '\n' ' ')"
    return 1
  fi
  # A run with failed credentials (munged gone, say) measures nothing.
  if grep -qE 'Generated [0-9]+ (encoding|decoding) errors' "$tmp/remunge.out"; then
    remunge_note="skipped: remunge reported errors: $(grep -E 'Generated [0-9]+' "$tmp/remunge.out" | tail -n 1)"
    return 1
  fi
  # "... Processed 61234 credentials in 5.001s (12244 creds/sec)"
  local parsed
  parsed=$(sed -nE 's/.*Processed ([0-9]+) credentials? in ([0-9.]+)s.*/\1 \2/p' "$tmp/remunge.out")
  remunge_rate=$(awk 'NF==2 && $2>0 { printf "%.1f", $1/$2 }' <<<"$parsed")
  if [ -z "$remunge_rate" ]; then
    remunge_rate=0
    remunge_note="skipped: could not parse remunge output: $(tail -n 1 "$tmp/remunge.out")"
    return 1
  fi
  remunge_note="$(awk '{print $1}' <<<"$parsed") credentials in $(awk '{print $2}' <<<"$parsed") s; remunge --decode, $workers threads; munged $munged_threads threads; $(munge_version)"
}

munge_version() {
  dpkg-query -W -f='munge ${Version}' munge 2>/dev/null || echo munge
}

# measure_conn [--raw]: the MUNGE-authenticated connection rate, or with
# --raw the same C client and server exchanging a credential-sized frame
# without MUNGE (the reference for what TCP alone costs them); sets
# got_rate (0 if not measured) and got_note.
measure_conn() {
  local raw=("$@") what=credentials
  [ $# -gt 0 ] && what=frames
  got_rate=0 got_note=""
  # One server thread per client: no connection waits for a free server
  # thread, as none waits for a goroutine at the MOM.
  start_conn_server "$munge_ip" conn-server --threads "$workers" "${raw[@]}" || { got_note="skipped: server did not start"; return 1; }
  echo "bench-munge: munge-conn-client --connect $conn_addr --threads $workers --warmup $wsecs --duration $secs ${raw[*]}" >&2
  if ! client --connect "$conn_addr" --threads "$workers" --warmup "$wsecs" --duration "$secs" "${raw[@]}" >"$tmp/conn.out" 2>&1; then
    got_note="skipped: munge-conn-client failed: $(tail -n 2 "$tmp/conn.out" | tr '\n' ' ')"
    stop_pid "$conn_pid"
    return 1
  fi
  stop_pid "$conn_pid"
  local line ops errs elapsed
  line=$(grep '^threads=' "$tmp/conn.out" | tail -n 1)
  ops=$(sed -nE 's/.* ops=([0-9]+) .*/\1/p' <<<"$line")
  errs=$(sed -nE 's/.* errors=([0-9]+) .*/\1/p' <<<"$line")
  elapsed=$(sed -nE 's/.* seconds=([0-9.]+) .*/\1/p' <<<"$line")
  echo "bench-munge: munge-conn-server: $(tail -n 1 "$conn_out")" >&2
  if [ -z "$ops" ] || [ -z "$errs" ] || [ -z "$elapsed" ]; then
    got_note="skipped: could not parse munge-conn-client output: $line"
    return 1
  fi
  # Same rule as remunge: a run with failures measures nothing.
  if [ "$errs" != 0 ]; then
    got_note="skipped: $errs failed connections, first: $(sed -nE 's/.*first_error="(.*)"$/\1/p' <<<"$line")"
    return 1
  fi
  if ! grep -qE ' decode_failed=0 replayed=0 wrong_uid=0 wrong_gid=0 wrong_payload=0$' "$conn_out"; then
    got_note="skipped: the server refused $what: $(tail -n 1 "$conn_out")"
    return 1
  fi
  got_rate=$(sed -nE 's/.* per_second=([0-9.]+) .*/\1/p' <<<"$line")
  got_note="$ops connections in $elapsed s, 0 errors; $workers client threads, $workers server threads"
  [ $# -eq 0 ] && got_note="$got_note; munged $munged_threads threads; $(munge_version)"
  return 0
}

if [ ! -x "$bin/munge-conn-server" ] || [ ! -x "$bin/munge-conn-client" ]; then
  conn_note="skipped: $bin/munge-conn-server or munge-conn-client not built (needs libmunge-dev and gcc: make munge-tools)"
fi
munge_up=""
if find_munge && start_munged; then
  munge_up=1
  echo "bench-munge: munged $(munge_version) on $munged_sock, $munged_threads threads" >&2
  if [ -z "$conn_note" ]; then self_check || true; fi
elif [ -n "$check_only" ]; then
  echo "bench-munge: self-check not run: $conn_note" >&2
  exit 1
fi
if [ -n "$check_only" ]; then
  if [ -n "$check_failed" ]; then
    echo "bench-munge: self-check FAILED: $check_failed" >&2
    exit 1
  fi
  echo "bench-munge: self-check passed" >&2
  exit 0
fi
conn_usable=""
[ -n "$munge_up" ] && [ -z "$conn_note" ] && conn_usable=1

for round in $(seq 1 "$rounds"); do
  [ "$rounds" -gt 1 ] && echo "bench-munge: round $round of $rounds"
  if [ -n "$munge_up" ]; then
    remunge_rate=0
    measure_remunge || true
    if [ -n "$conn_usable" ]; then
      measure_conn || true
      conn_rate=$got_rate conn_note=$got_note
      measure_conn --raw || true
      craw_rate=$got_rate craw_note=$got_note
    fi
  fi
  if [ "$remunge_rate" = 0 ]; then echo "bench-munge: remunge $remunge_note" >&2; fi
  if [ "$conn_rate" = 0 ]; then echo "bench-munge: MUNGE connection $conn_note" >&2; fi
  # munged stays up (idle: it does no work between requests).
  echo "bench-munge: machine: $(nproc) CPUs, $(sed -nE 's/^model name\s*:\s*//p' /proc/cpuinfo | head -n 1), $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg)"
  "$bin/momgate-bench" run --bin "$bin" --cost --workers "$workers" --duration "$duration" --warmup "$warmup" \
    --munge-rate "$remunge_rate" --munge-note "$remunge_note" \
    --munge-conn-rate "$conn_rate" --munge-conn-note "$conn_note" \
    --raw-c-rate "$craw_rate" --raw-c-note "$craw_note"
done
if [ -n "$check_failed" ]; then
  echo "bench-munge: MUNGE tools self-check FAILED: $check_failed" >&2
  exit 1
fi
