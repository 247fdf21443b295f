#!/usr/bin/env bash
# make bench-munge: measures in one run
#   1. MUNGE's encode+decode round trips per second (remunge --decode against
#      a private munged this script starts and stops),
#   2. momgate PING swaps per second through a real MOM daemon on new
#      loopback connections (momgate-bench run), and
#   3. the raw loopback rate of connect + one frame each way + close,
# and prints the rates and the ratios.
#
# Usage: scripts/bench-munge.sh [BINDIR]   (default bin; needs momgate-bench,
#        momgate-server, momgate-mom and momgate-qmgr there: `make bench-munge` builds them)
# Environment: BENCH_DURATION (default 5s per measurement), BENCH_WORKERS
#        (default: number of CPUs; remunge uses as many threads).
#
# If munge is missing it is installed with apt-get (Debian package munge);
# if that is impossible the MUNGE rate is reported as skipped, with why, and
# the momgate rates are still measured. munged runs as the current user on
# a socket, key, pid, log and seed file in a private temp dir, is stopped by
# its pid on exit or interrupt, and no munged of ours is left running.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-bin}
duration=${BENCH_DURATION:-5s}
workers=${BENCH_WORKERS:-$(nproc)}
secs=${duration%s}
if ! [[ $secs =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
  echo "bench-munge: BENCH_DURATION=$duration: want whole seconds, e.g. 5s" >&2
  exit 2
fi
for b in momgate-bench momgate-server momgate-mom momgate-qmgr; do
  if [ ! -x "$bin/$b" ]; then
    echo "bench-munge: $bin/$b not found: run make bench-munge (it builds them)" >&2
    exit 2
  fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/momgate-bench-munge.XXXXXX")
# munged wants every directory above its socket traversable by all (a+x);
# nothing in it is readable by others.
chmod 711 "$tmp"
munged_pid=""
policy_added=""

stop_munged() {
  if [ -n "$munged_pid" ] && kill -0 "$munged_pid" 2>/dev/null; then
    kill -TERM "$munged_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$munged_pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$munged_pid" 2>/dev/null; then
      kill -KILL "$munged_pid" 2>/dev/null || true
    fi
    wait "$munged_pid" 2>/dev/null || true
  fi
  munged_pid=""
}
cleanup() {
  stop_munged
  if [ -n "$policy_added" ]; then rm -f /usr/sbin/policy-rc.d; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "bench-munge: interrupted" >&2; exit 130' INT TERM

munge_rate=0
munge_note=""

find_munge() {
  munged_bin=$(command -v munged || true)
  [ -z "$munged_bin" ] && [ -x /usr/sbin/munged ] && munged_bin=/usr/sbin/munged
  remunge_bin=$(command -v remunge || true)
  [ -n "$munged_bin" ] && [ -n "$remunge_bin" ]
}

install_munge() {
  if [ "$(id -u)" != 0 ]; then
    munge_note="skipped: munge is not installed and installing it needs root (apt-get install munge)"
    return 1
  fi
  if ! command -v apt-get >/dev/null; then
    munge_note="skipped: munge is not installed and there is no apt-get here"
    return 1
  fi
  echo "bench-munge: installing munge with apt-get" >&2
  # Keep the package from starting a system munged: only ours runs.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy_added=1
  fi
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq munge >"$tmp/apt.log" 2>&1; then
    apt-get update -qq >>"$tmp/apt.log" 2>&1 || true
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq munge >>"$tmp/apt.log" 2>&1; then
      munge_note="skipped: apt-get install munge failed: $(tail -n 1 "$tmp/apt.log")"
      return 1
    fi
  fi
  if [ -n "$policy_added" ]; then rm -f /usr/sbin/policy-rc.d; policy_added=""; fi
  find_munge || { munge_note="skipped: munge installed but munged or remunge not found"; return 1; }
}

measure_munge() {
  local sock="$tmp/run/munge.socket" key="$tmp/munge.key"
  mkdir -m 755 "$tmp/run"
  # A fresh 1 KiB key, owner-only, as mungekey would make.
  head -c 1024 /dev/urandom >"$key"
  chmod 600 "$key"
  local force=()
  # munged refuses some setups as root (and a socket dir it does not own)
  # unless forced; --force only relaxes those checks.
  [ "$(id -u)" = 0 ] && force=(--force)
  "$munged_bin" --foreground "${force[@]}" --socket="$sock" --key-file="$key" \
    --pid-file="$tmp/munged.pid" --log-file="$tmp/munged.log" --seed-file="$tmp/munged.seed" \
    >"$tmp/munged.out" 2>&1 &
  munged_pid=$!
  for _ in $(seq 1 100); do
    [ -S "$sock" ] && break
    kill -0 "$munged_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ ! -S "$sock" ]; then
    munge_note="skipped: munged did not start: $(cat "$tmp/munged.out" "$tmp/munged.log" 2>/dev/null | tail -n 2 | tr '\n' ' ')"
    stop_munged
    return 1
  fi
  local cmd=("$remunge_bin" --socket="$sock" --decode --duration="$secs" --num-threads="$workers")
  echo "bench-munge: ${cmd[*]}" >&2
  if ! "${cmd[@]}" >"$tmp/remunge.out" 2>&1; then
    munge_note="skipped: remunge failed: $(tail -n 2 "$tmp/remunge.out" | tr '\n' ' ')"
    stop_munged
    return 1
  fi
  stop_munged
  grep -v 'encoding failed\|decoding failed' "$tmp/remunge.out" | tail -n 4 >&2
  # A run with failed credentials (munged gone, say) measures nothing.
  if grep -qE 'Generated [0-9]+ (encoding|decoding) errors' "$tmp/remunge.out"; then
    munge_note="skipped: remunge reported errors: $(grep -E 'Generated [0-9]+' "$tmp/remunge.out" | tail -n 1)"
    return 1
  fi
  # "... Processed 61234 credentials in 5.001s (12244 creds/sec)"
  munge_rate=$(sed -nE 's/.*Processed ([0-9]+) credentials? in ([0-9.]+)s.*/\1 \2/p' "$tmp/remunge.out" |
    awk 'NF==2 && $2>0 { printf "%.1f", $1/$2 }')
  if [ -z "$munge_rate" ]; then
    munge_rate=0
    munge_note="skipped: could not parse remunge output: $(tail -n 1 "$tmp/remunge.out")"
    return 1
  fi
  munge_note="remunge --decode -D ${secs}s -t $workers ($(dpkg-query -W -f='munge ${Version}' munge 2>/dev/null || echo munge))"
}

if find_munge || install_munge; then
  measure_munge || true
fi
if [ "$munge_rate" = 0 ]; then
  echo "bench-munge: MUNGE $munge_note" >&2
fi

echo "bench-munge: machine: $(nproc) CPUs, $(sed -nE 's/^model name\s*:\s*//p' /proc/cpuinfo | head -n 1), $(uname -sr)"
"$bin/momgate-bench" run --bin "$bin" --workers "$workers" --duration "$duration" \
  --munge-rate "$munge_rate" --munge-note "$munge_note"
