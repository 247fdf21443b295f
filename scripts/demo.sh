#!/usr/bin/env bash
# `make run`: a demo cluster on loopback. One server on 127.0.0.1 and three
# MOMs on 127.0.0.2-127.0.0.4, enrolled with one-time tokens; the MOMs admit
# each other by PING swap. Then what is defended: a PING captured on the
# path and replayed is refused, and a deleted node is refused by the server
# (its MOM stops) and by its sisters, each with its audit line. Runs until
# Ctrl-C, then stops everything, removes its directory and exits 0.
#
# bin/momgate-demo (tools/cmd/momgate-demo) relays and replays the PING;
# `make run` runs this script through `momgate-demo foreground`, so Ctrl-C
# reaches the demo and not make (nor a reader of its output: make run | tee).
# DEMO_SERVER_PORT, DEMO_IM_PORT, DEMO_RELAY_PORT and DEMO_DEAD_PORT move
# its ports (15001, 15003, 15099, 15009); MOMGATE_DEMO_ONCE=1 stops it after
# one pass.
set -euo pipefail
bin=${1:-bin}
bin=$(cd "$bin" && pwd)
sport=${DEMO_SERVER_PORT:-15001}
import=${DEMO_IM_PORT:-15003}
rport=${DEMO_RELAY_PORT:-15099}
dport=${DEMO_DEAD_PORT:-15009} # nobody listens: a MOM cut off from the server
work=$(mktemp -d "${TMPDIR:-/tmp}/momgate-demo.XXXXXX")
pids=()

# say prints a line; a reader that went away (make run | head) does not
# stop the demo or its cleanup.
say() { printf '%s\n' "$*" 2>/dev/null || true; }

cleanup() {
  trap - EXIT INT TERM
  trap '' PIPE
  set +e
  say ""
  say "== stopping demo cluster"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$work"
  say "stopped; removed $work"
}
trap cleanup EXIT
# Ctrl-C (or a TERM) is how the demo ends: the cleanup runs, the status is 0.
trap 'exit 0' INT TERM

qmgr() { "$bin/momgate-qmgr" --state-dir "$work/server" "$@"; }
momcmd() { "$bin/momgate-mom" "$@"; }

# wait_for DESCRIPTION COMMAND...: retry COMMAND up to 100 times, 0.1 s apart.
wait_for() {
  local what=$1; shift
  for _ in $(seq 1 100); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "demo: timed out waiting for $what (logs in $work)" >&2
  return 1
}

# forget PID: the process ended; the cleanup need not wait for it.
forget() {
  local keep=() p
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}

# audit_line FILE REASON NODE: the last audit line of FILE with that reason
# and node, once it is there.
audit_line() {
  wait_for "a $2 line naming $3 in $1" grep -q "reason=$2" "$1"
  grep "reason=$2" "$1" | grep "node=$3 " | tail -n 1
}

start_mom() { # start_mom NAME IP SERVER [ARGS...]
  local name=$1 ip=$2 server=$3; shift 3
  "$bin/momgate-mom" run --state-dir "$work/$name" --server "$server" --listen "$ip:$import" \
    --heartbeat 2s "$@" 2>>"$work/$name.log" &
  pids+=($!)
}

say "== state in $work"
"$bin/momgate-server" init --state-dir "$work/server"
"$bin/momgate-server" run --state-dir "$work/server" --listen "127.0.0.1:$sport" \
  --audit-log "$work/server-audit.log" 2>"$work/server.log" &
pids+=($!)
wait_for "server admin socket" qmgr -c "list node"

declare -A mompid
for i in 2 3 4; do
  out=$(qmgr --json -c "create node n$i Mom=127.0.0.$i,Port=$import")
  token=$(printf '%s\n' "$out" | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
  [ -n "$token" ] || { echo "demo: no token in: $out" >&2; exit 1; }
  say "created node n$i Mom=127.0.0.$i (token ${token:0:16}...)"
  start_mom "n$i" "127.0.0.$i" "127.0.0.1:$sport" --enroll "$token"
  mompid[n$i]=$!
done

up() { [ "$(qmgr nodes -l --no-header | wc -l)" = 0 ]; }
wait_for "three MOMs enrolled and up" up

say
say "== momgate-qmgr nodes"
qmgr nodes

say
say "== sister MOMs swap PINGs"
for from in 2 3 4; do
  for to in 2 3 4; do
    [ "$from" = "$to" ] && continue
    printf 'n%s -> ' "$from"
    momcmd ping --state-dir "$work/n$from" "127.0.0.$to:$import"
  done
done

say
say "== momgate-mom peers --state-dir $work/n2"
momcmd peers --state-dir "$work/n2"

say
say "== defended: a PING captured on the path and replayed"
say "n2 pings n3 through a relay on 127.0.0.3:$rport, which keeps a copy and then replays it from n2's address:"
"$bin/momgate-demo" replay --listen "127.0.0.3:$rport" --to "127.0.0.3:$import" --from 127.0.0.2 >"$work/replay.out" 2>&1 &
relay=$!
pids+=("$relay")
wait_for "the relay" grep -q "relay listening" "$work/replay.out"
printf 'n2 -> '
momcmd ping --state-dir "$work/n2" "127.0.0.3:$rport"
wait "$relay" || { cat "$work/replay.out" >&2; echo "demo: the replay was not refused" >&2; exit 1; }
forget "$relay"
grep -v "relay listening" "$work/replay.out"
say "n3's audit line ($work/n3/audit.log):"
audit_line "$work/n3/audit.log" replay n2

say
say "== defended: a deleted node"
say "\$ momgate-qmgr -c \"delete node n4\""
qmgr -c "delete node n4"
rc=0
wait "${mompid[n4]}" || rc=$?
forget "${mompid[n4]}"
say "n4's MOM is refused by the server and stops, exit status $rc:"
grep "deleted from the cluster" "$work/n4.log" | tail -n 1
say "the server's audit line ($work/server-audit.log):"
audit_line "$work/server-audit.log" revoked n4
say "n4's MOM, restarted where it cannot reach the server, tries its sister n2:"
start_mom n4 127.0.0.4 "127.0.0.1:$dport"
cutoff=$!
wait_for "n4's admin socket" momcmd status --state-dir "$work/n4"
printf 'n4 -> '
momcmd ping --state-dir "$work/n4" "127.0.0.2:$import" || true
say "n2's audit line ($work/n2/audit.log):"
audit_line "$work/n2/audit.log" revoked n4
kill "$cutoff" 2>/dev/null || true
wait "$cutoff" 2>/dev/null || true
forget "$cutoff"

say
say "== momgate-qmgr nodes"
qmgr nodes
say
say "== momgate-qmgr -c 'list server' (counters)"
qmgr -c "list server" | grep -E "nodes|admissions|upgraded_nodes"
say
say "== momgate-mom status --state-dir $work/n2"
momcmd status --state-dir "$work/n2"
say
say "logs and audit logs are in $work; press Ctrl-C to stop the cluster"
if [ -n "${MOMGATE_DEMO_ONCE:-}" ]; then exit 0; fi
# Stay up until Ctrl-C, or until a daemon dies.
wait -n "${pids[@]}" || true
echo "demo: a daemon exited; see the logs in $work" >&2
exit 1
