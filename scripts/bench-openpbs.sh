#!/usr/bin/env bash
# make bench-openpbs: the figures of docs/PERFORMANCE.md "Inside OpenPBS",
# in one run:
#   1. TPP handshakes per second through the plugins, as PBS calls them
#      (contrib/openpbs/plugin/test/drive.c loads each plugin as OpenPBS
#      does and runs initiator and responder contexts against the host's
#      daemon): libauth_momgate.so against momgate-server, with and without
#      PBS_ENCRYPT_METHOD=momgate's key exchange, and OpenPBS's own
#      libauth_munge.so against munged; the same processes, the same time;
#   2. the time for ten pbs_moms to join a real OpenPBS (the namespace
#      harness with --moms 10), under momgate and, as the reference, under
#      OpenPBS's default resvport.
# It prints each figure with the load average, for the machine it ran on.
#
# Usage: sudo scripts/bench-openpbs.sh     (make bench-openpbs)
# Environment: BENCH_PROCS (default 4 processes running handshakes), BENCH_SECONDS (default 5 per
# measurement), BENCH_MOMS (default 10; 0: no join figures), OPENPBS_BUILD or PBS_EXEC as for
# the harness. Needs root: munged's socket is its compiled-in path
# (/run/munge), mounted privately in a mount namespace of this script's own,
# and the harness makes network namespaces. Everything it starts is
# stopped by pid on exit; its temporary directory is removed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
procs=${BENCH_PROCS:-4}
secs=${BENCH_SECONDS:-5}
moms=${BENCH_MOMS:-10}
die() { echo "bench-openpbs: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "needs root (a private /run/munge, network namespaces)"
[[ $procs =~ ^[0-9]+$ ]] && [ "$procs" -ge 1 ] && [ "$procs" -le 64 ] || die "BENCH_PROCS=$procs: want 1..64"
[[ $secs =~ ^[0-9]+$ ]] && [ "$secs" -ge 1 ] && [ "$secs" -le 600 ] || die "BENCH_SECONDS=$secs: want 1..600"

# Part 1 runs in a mount namespace of its own, where /run/munge is private.
if [ -z "${BENCH_OPENPBS_INNER:-}" ]; then
  if [ -z "${PBS_EXEC:-}" ]; then
    build=${OPENPBS_BUILD:-}
    for d in "$repo/../shared/openpbs" "$repo/../../shared/openpbs"; do
      [ -n "$build" ] || [ ! -x "$d/build.sh" ] || build=$d/build.sh
    done
    [ -n "$build" ] || die "no ../shared/openpbs/build.sh (set OPENPBS_BUILD or PBS_EXEC)"
    PBS_EXEC=$("$build" | tail -n 1)
  fi
  export PBS_EXEC
  [ -f "$PBS_EXEC/lib/libauth_munge.so" ] || die "no $PBS_EXEC/lib/libauth_munge.so (OpenPBS builds it with libmunge-dev)"
  echo "bench-openpbs: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
  BENCH_OPENPBS_INNER=1 unshare --mount --propagation private -- "$0"
  # BENCH_MOMS=0: the handshake figures alone.
  [ "$moms" -gt 0 ] || { echo "bench-openpbs: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"; exit 0; }
  for auth in momgate resvport; do
    out=$(contrib/openpbs/test/harness.sh --auth "$auth" --moms "$moms" 2>&1) || { echo "$out" | tail -n 20 >&2; die "harness --moms $moms --auth $auth failed"; }
    echo "$out" | grep '^JOIN:' | sed "s/^JOIN: /join ($auth):      /"
  done
  echo "bench-openpbs: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  exit 0
fi

tmp=$(mktemp -d /tmp/mgbench-pbs.XXXXXX)
chmod 711 "$tmp"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_until DESC CMD...: polls CMD for up to 20 s.
wait_until() {
  local desc=$1 i
  shift
  for i in $(seq 1 200); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "$desc: not within 20 s"
}

make -s build plugin BIN="$tmp/bin" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log" >&2; die "make build plugin"; }
cc -O2 -o "$tmp/bin/drive" contrib/openpbs/plugin/test/drive.c -ldl -lpthread

# momgate-server answering the plugin on the loopback; the bench's
# handshakes are its own host's (pbs_server joining its pbs_comm): both
# sides of each one go to it.
ip=127.0.91.1
"$tmp/bin/momgate-server" init --state-dir "$tmp/server" >/dev/null
"$tmp/bin/momgate-server" run --state-dir "$tmp/server" --listen "$ip:15101" --pbs-socket "$tmp/run/pbs.sock" \
  --pbs-host-name pbssrv --audit-log "$tmp/audit.log" >"$tmp/server.log" 2>&1 &
mg_pid=$!
pids+=($!)
wait_until "momgate-server's plugin socket" test -S "$tmp/run/pbs.sock"

# munged on its compiled-in socket, private to this namespace, fresh key.
munged_bin=$(command -v munged || echo /usr/sbin/munged)
[ -x "$munged_bin" ] || die "munged not installed (Debian package munge)"
mount -t tmpfs -o mode=0755 tmpfs /run/munge 2>/dev/null || { mkdir -p /run/munge && mount -t tmpfs -o mode=0755 tmpfs /run/munge; }
head -c 1024 /dev/urandom >"$tmp/munge.key"
chmod 600 "$tmp/munge.key"
"$munged_bin" --foreground --force --socket=/run/munge/munge.socket.2 --key-file="$tmp/munge.key" \
  --pid-file="$tmp/munged.pid" --log-file="$tmp/munged.log" --seed-file="$tmp/munged.seed" >"$tmp/munged.out" 2>&1 &
munged_pid=$!
pids+=($!)
wait_until "munged's socket" test -S /run/munge/munge.socket.2

# cpu_ticks PID: the user and system CPU time PID has used, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# measure NAME LIB MODE DAEMON_PID [PRELOAD]: one bench run; prints its
# line, with the daemon's CPU time per handshake. OpenPBS's plugins call
# into libpbs, which a PBS process has loaded: PRELOAD it.
measure() {
  local name=$1 lib=$2 mode=$3 dpid=$4 preload=${5:-} out t0 t1 n
  t0=$(cpu_ticks "$dpid")
  out=$(LD_PRELOAD=$preload "$tmp/bin/drive" "$lib" "$mode" "$procs" "$secs" "$tmp/run/pbs.sock" "$ip" "$ip" service 2>&1) ||
    { echo "$out" >&2; die "$name: the handshakes failed"; }
  t1=$(cpu_ticks "$dpid")
  rate=$(echo "$out" | sed -n 's/^bench: [0-9]* handshakes in [0-9.]* s, \([0-9]*\)\/s.*/\1/p')
  n=$(echo "$out" | sed -n 's/^bench: \([0-9]*\) handshakes.*/\1/p')
  printf '%-24s %6s handshakes/s  (%s; daemon %s us CPU per handshake; load average %s)\n' "$name:" "$rate" "${out#bench: }" \
    "$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$n" 'BEGIN { printf "%.1f", (n > 0 ? t * 1e6 / hz / n : 0) }')" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
}
measure "momgate" "$tmp/bin/libauth_momgate.so" bench "$mg_pid"
momgate_rate=$rate
measure "momgate, with keys" "$tmp/bin/libauth_momgate.so" bench-encrypt "$mg_pid"
measure "munge (OpenPBS plugin)" "$PBS_EXEC/lib/libauth_munge.so" bench "$munged_pid" "$PBS_EXEC/lib/libpbs.so"
munge_rate=$rate
if [ "$munge_rate" -gt 0 ]; then
  echo "ratio momgate / munge:    $(awk -v a="$momgate_rate" -v b="$munge_rate" 'BEGIN { printf "%.2f", a / b }')"
fi
