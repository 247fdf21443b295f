#!/usr/bin/env bash
# rolling-migrate.sh: migrate a momgate cluster live from the legacy
# address-list protocol (v1) to PING (v2), or roll it back, batch by batch,
# while jobs run. The runbook is docs/MIGRATION.md.
#
# The plan and its progress live in a state file (--state), written after
# every step that succeeds, so the script can be interrupted at any point
# and re-run: it resumes at the step it was on (every step is safe to
# repeat). A failure leaves the cluster in a consistent mode (compat while
# nodes are mixed), says what failed, and exits non-zero.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: rolling-migrate.sh --state-dir DIR|--socket PATH --restart-cmd CMD [options]

Migrate to PING:  switch the server to compat, restart the MOMs in batches with
                  --protocol ping (through CMD), verify each batch by PING swaps
                  both ways, then set the server to ping.
Roll back:        --rollback: back to compat, restart upgraded MOMs following the
                  server, clear their no-downgrade marks, set the server to legacy.

  --state-dir DIR      the server's state directory (its admin socket)
  --socket PATH        the server's admin socket (instead of --state-dir)
  --restart-cmd CMD    site hook restarting one MOM; {node} is replaced by the node
                       name and {protocol} by the --protocol it must run with (ping,
                       or follow for a rollback). Run with bash -c. With the shipped
                       unit, which reads /etc/momgate/mom.env (docs/MIGRATION.md):
                       'ssh {node} "touch /etc/momgate/mom.env && sed -i /^MOMGATE_MOM_PROTOCOL=/d /etc/momgate/mom.env && echo MOMGATE_MOM_PROTOCOL={protocol} >> /etc/momgate/mom.env && systemctl restart momgate-mom"'
  --mom-state-dir T    MOM state directory on each node, {node} replaced
                       (default /var/lib/momgate/mom)
  --remote T           prefix to run momgate-mom on a node for the PING checks, {node}
                       replaced, e.g. 'ssh {node}' (default: run locally)
  --batch N            MOMs per batch (default 10)
  --max-batches K      stop (successfully) after K batches in this run; re-run to go on
  --verify-peers K     peers each upgraded node swaps PINGs with, both ways (default 2)
  --timeout SECONDS    how long to wait for MOMs in each step (default 120)
  --state FILE         migration state file (default ./momgate-migration.json)
  --bin-dir DIR        directory of momgate-qmgr, momgate-mom, momgate-migrate
  --rollback           roll back to legacy instead of migrating
  --dry-run            print the plan, change nothing
  -h, --help           this text
EOF
}

die_usage() { echo "rolling-migrate.sh: $*" >&2; echo "Try --help." >&2; exit 2; }

server_args=() restart_cmd="" mom_state_dir="/var/lib/momgate/mom" remote="" batch=10 max_batches=""
verify_peers=2 timeout=120 state="./momgate-migration.json" bin_dir="" rollback=0 dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --state-dir) [ $# -ge 2 ] || die_usage "$1 needs a value"; server_args=(--state-dir "$2"); shift 2 ;;
    --socket) [ $# -ge 2 ] || die_usage "$1 needs a value"; server_args=(--socket "$2"); shift 2 ;;
    --restart-cmd) [ $# -ge 2 ] || die_usage "$1 needs a value"; restart_cmd=$2; shift 2 ;;
    --mom-state-dir) [ $# -ge 2 ] || die_usage "$1 needs a value"; mom_state_dir=$2; shift 2 ;;
    --remote) [ $# -ge 2 ] || die_usage "$1 needs a value"; remote=$2; shift 2 ;;
    --batch) [ $# -ge 2 ] || die_usage "$1 needs a value"; batch=$2; shift 2 ;;
    --max-batches) [ $# -ge 2 ] || die_usage "$1 needs a value"; max_batches=$2; shift 2 ;;
    --verify-peers) [ $# -ge 2 ] || die_usage "$1 needs a value"; verify_peers=$2; shift 2 ;;
    --timeout) [ $# -ge 2 ] || die_usage "$1 needs a value"; timeout=$2; shift 2 ;;
    --state) [ $# -ge 2 ] || die_usage "$1 needs a value"; state=$2; shift 2 ;;
    --bin-dir) [ $# -ge 2 ] || die_usage "$1 needs a value"; bin_dir=$2; shift 2 ;;
    --rollback) rollback=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die_usage "unknown argument '$1'" ;;
  esac
done
for v in batch verify_peers timeout; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die_usage "--${v//_/-} must be a positive integer, not '${!v}'"
done
[ -z "$max_batches" ] || [[ $max_batches =~ ^[0-9]+$ ]] || die_usage "--max-batches must be a number, not '$max_batches'"
[ ${#server_args[@]} -gt 0 ] || die_usage "give the server with --state-dir DIR or --socket PATH"
[ $dry_run -eq 1 ] || [ -n "$restart_cmd" ] || die_usage "--restart-cmd is required (or use --dry-run)"

if [ -n "$bin_dir" ]; then PATH="$bin_dir:$PATH"; fi
for b in momgate-qmgr momgate-mom momgate-migrate; do
  command -v "$b" >/dev/null || die_usage "$b not found (put it on PATH or use --bin-dir)"
done

what=migration
[ $rollback -eq 0 ] || what=rollback
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

qmgr() { momgate-qmgr "${server_args[@]}" "$@"; }
view() { qmgr --json -c "print server"; }

# expand TEMPLATE NODE [PROTOCOL]: replace {node} and {protocol}.
expand() {
  local t=$1
  t=${t//\{node\}/$2}
  t=${t//\{protocol\}/${3-}}
  printf '%s' "$t"
}

current_mode() {
  local json
  if json=$(view 2>/dev/null) && m=$(printf '%s' "$json" | momgate-migrate mode 2>/dev/null); then
    printf '%s' "$m"
  else
    printf 'unknown (server unreachable)'
  fi
}

# fail MESSAGE: record the failure, explain, exit 1.
fail() {
  local msg=$1
  momgate-migrate record --state "$state" fail "$msg" || true
  local mode
  mode=$(current_mode)
  log "FAILED at step $step/$steps ($desc):"
  printf '%s\n' "$msg" | sed 's/^/    /'
  log "The cluster is in $mode mode, which is consistent: every MOM can still reach every other."
  log "Fix the cause and re-run the same command to retry this step, or run with --rollback to go back to legacy."
  exit 1
}

interrupted() {
  log "interrupted at step ${step:-?}/${steps:-?}; the state is in $state: re-run to continue"
  exit 130
}
trap interrupted INT TERM

# Plan, or resume the plan in the state file.
json=$(view) || { log "preflight: the server is not reachable through momgate-qmgr ${server_args[*]}"; exit 1; }
plan_args=(--state "$state" --batch "$batch" --verify-peers "$verify_peers")
[ $rollback -eq 0 ] || plan_args+=(--rollback)
[ $dry_run -eq 0 ] || plan_args+=(--dry-run)
if ! printf '%s' "$json" | momgate-migrate plan "${plan_args[@]}" | while IFS= read -r line; do log "$line"; done; then
  log "cannot plan the $what (see the message above)"
  exit 1
fi
if [ $dry_run -eq 1 ]; then
  log "restart command template: ${restart_cmd:-(none given)}"
  exit 0
fi

batches_run=0
step="" steps="" desc="plan"
while :; do
  nxt=$(momgate-migrate next --state "$state") || { log "cannot read the state file $state"; exit 1; }
  eval "$nxt"
  if [ "$action" = done ]; then
    log "$desc"
    exit 0
  fi
  if [ "$action" = restart ] && [ "$goal" = migrate ] && [ -n "$max_batches" ] && [ "$batches_run" -ge "$max_batches" ]; then
    log "paused after $batches_run batch(es) as asked (--max-batches $max_batches); the server stays in compat mode"
    log "re-run without --max-batches (or with a larger one) to continue at step $step/$steps"
    exit 0
  fi
  retry=""
  [ "$attempts" -eq 0 ] || retry=" (retry; last attempt failed: $last_error)"
  log "step $step/$steps: $desc$retry"
  momgate-migrate record --state "$state" begin || { log "cannot record step $step in $state"; exit 1; }
  case "$action" in
    preflight)
      json=$(view) || fail "the server is not reachable"
      if ! out=$(printf '%s' "$json" | momgate-migrate check --want preflight --goal "$goal"); then
        fail "$out"
      fi
      log "  server reachable; mode $(printf '%s' "$json" | momgate-migrate mode); nodes up"
      ;;
    set-mode)
      out=$(qmgr -c "set server mode=$mode" 2>&1) || fail "set server mode=$mode: $out"
      log "  server mode is now $mode"
      ;;
    restart)
      for n in $nodes; do
        cmd=$(expand "$restart_cmd" "$n" "$protocol")
        log "  restart $n: $cmd"
        out=$(bash -c "$cmd" 2>&1) || fail "restart of $n failed: $cmd: $out"
      done
      if [ "$goal" = migrate ]; then batches_run=$((batches_run + 1)); fi
      ;;
    wait)
      deadline=$((SECONDS + timeout))
      while :; do
        if json=$(view 2>&1) && out=$(printf '%s' "$json" | momgate-migrate check --want "$want" --nodes "$nodes" 2>&1); then
          break
        fi
        [ -n "${out:-}" ] || out=$json
        if [ $SECONDS -ge $deadline ]; then
          fail "not ready after ${timeout}s:
$out"
        fi
        sleep 0.2
      done
      log "  ok: ${nodes:-every node} $want"
      ;;
    verify)
      for p in $pairs; do
        from=${p%%>*} rest=${p#*>}
        to=${rest%%>*} addr=${rest#*>}
        dir=$(expand "$mom_state_dir" "$from")
        pre=""
        [ -z "$remote" ] || pre=$(expand "$remote" "$from")
        ok=0
        for try in 1 2 3; do
          if out=$($pre momgate-mom ping --state-dir "$dir" "$addr" 2>&1); then ok=1; break; fi
          sleep 0.5
        done
        [ $ok -eq 1 ] || fail "$to did not admit $from by PING ($addr): $out"
        log "  $from -> $to: $out"
      done
      ;;
    clear-upgraded)
      list=$(printf '%s' "$nodes" | tr ' ' ',')
      out=$(qmgr -c "set node $list upgraded=false" 2>&1) || fail "set node $list upgraded=false: $out"
      log "  upgrade marks cleared: $list"
      ;;
    *)
      fail "unknown action '$action' from momgate-migrate (version mismatch?)"
      ;;
  esac
  momgate-migrate record --state "$state" ok || { log "cannot record step $step in $state"; exit 1; }
done
