#!/usr/bin/env bash
# `make run`: a demo cluster on loopback. One server on 127.0.0.1 and three
# MOMs on 127.0.0.2-127.0.0.4, enrolled with one-time tokens; the MOMs then
# admit each other by PING swap. Runs until Ctrl-C, then stops everything.
set -euo pipefail
bin=${1:-bin}
bin=$(cd "$bin" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/momgate-demo.XXXXXX")
pids=()
cleanup() {
  trap - EXIT INT TERM
  echo
  echo "== stopping demo cluster"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
  echo "stopped; removed $work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

qmgr() { "$bin/momgate-qmgr" --state-dir "$work/server" "$@"; }

# wait_for DESCRIPTION COMMAND...: retry COMMAND up to 100 times, 0.1 s apart.
wait_for() {
  local what=$1; shift
  for _ in $(seq 1 100); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "demo: timed out waiting for $what" >&2
  return 1
}

echo "== state in $work"
"$bin/momgate-server" init --state-dir "$work/server"
"$bin/momgate-server" run --state-dir "$work/server" --listen 127.0.0.1:15001 \
  --audit-log "$work/server-audit.log" 2>"$work/server.log" &
pids+=($!)
wait_for "server admin socket" qmgr -c "list node"

for i in 2 3 4; do
  out=$(qmgr --json -c "create node n$i Mom=127.0.0.$i,Port=15003")
  token=$(printf '%s\n' "$out" | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
  [ -n "$token" ] || { echo "demo: no token in: $out" >&2; exit 1; }
  echo "created node n$i Mom=127.0.0.$i (token ${token:0:16}...)"
  "$bin/momgate-mom" run --state-dir "$work/n$i" --server 127.0.0.1:15001 --listen "127.0.0.$i:15003" \
    --enroll "$token" --heartbeat 2s 2>"$work/n$i.log" &
  pids+=($!)
done

up() { [ "$(qmgr -c 'list node' | grep -c 'state = up')" = 3 ]; }
wait_for "three MOMs enrolled and up" up

echo
echo "== momgate-qmgr -c 'list node'"
qmgr -c "list node"

echo "== sister MOMs swap PINGs"
for from in 2 3 4; do
  for to in 2 3 4; do
    [ "$from" = "$to" ] && continue
    printf 'n%s -> ' "$from"
    "$bin/momgate-mom" ping --state-dir "$work/n$from" "127.0.0.$to:15003"
  done
done

echo
echo "== momgate-mom peers --state-dir $work/n2"
"$bin/momgate-mom" peers --state-dir "$work/n2"
echo
echo "== momgate-mom status --state-dir $work/n2"
"$bin/momgate-mom" status --state-dir "$work/n2"
echo
echo "logs and audit logs are in $work; press Ctrl-C to stop the cluster"
if [ -n "${MOMGATE_DEMO_ONCE:-}" ]; then exit 0; fi
# Stay up until Ctrl-C, or until a daemon dies.
wait -n "${pids[@]}" || true
echo "demo: a daemon exited; see the logs in $work" >&2
exit 1
