# shellcheck shell=bash
# What momgate refuses, in the real cluster, each seen where the issue asks:
# the momgate reason in pbs_comm's log and in momgate-server's audit log.
# An intruder host (INTRUDER, its own address) comes up for each case with
# a pbs_mom that tries to join pbs_comm, and goes away after. Sourced by
# harness.sh after momgate.sh; run with --auth momgate only.

INTRUDER=pbsx
# An address on the link where nothing answers: a momgate-mom told to use it
# as its server never hears from the server, so it is never told that its
# node was deleted, and keeps serving the plugin with the keys it has, as a
# thief's daemon that ignores the deletion would.
NOWHERE=10.201.0.250

# mark_logs: what refused_in_logs looks at starts after this point.
mark_logs() {
  COMM_SINCE=$(cat "$(pbs_home "$SERVER")"/comm_logs/* | wc -l)
  AUDIT_SINCE=$(wc -l <"$T/$SERVER/momgate/audit.log")
}

# refused_in_logs ADDR REASONS: since mark_logs, pbs_comm logged the
# plugin's refusal of a leaf at ADDR with one of REASONS (a grep -E
# alternation), and momgate-server audited it. Prints the comm log line.
refused_in_logs() {
  local addr=$1 reasons=$2
  cat "$(pbs_home "$SERVER")"/comm_logs/* | tail -n +$((COMM_SINCE + 1)) |
    grep -E "momgate: refused $addr[ :].*($reasons):" | tail -n 1 | grep . &&
    tail -n +$((AUDIT_SINCE + 1)) "$T/$SERVER/momgate/audit.log" | grep 'channel=pbs' | grep 'outcome=rejected' |
    grep "peer=\"$addr:" | grep -qE "reason=\"?($reasons)"
}

# closed_in_logs ADDR: since mark_logs, pbs_comm closed the open connection
# of the leaf at ADDR because momgate revoked it, and momgate-server
# audited the revocation. Prints the comm log line.
closed_in_logs() {
  cat "$(pbs_home "$SERVER")"/comm_logs/* | tail -n +$((COMM_SINCE + 1)) |
    grep -E "connection from $1 no longer admitted, closing it: momgate: revoked the open connection of $1 .*: revoked:" | tail -n 1 | grep . &&
    tail -n +$((AUDIT_SINCE + 1)) "$T/$SERVER/momgate/audit.log" | grep 'channel=pbs' | grep 'outcome=rejected' |
    grep "peer=\"$1:" | grep -q 'open connection, check'
}

# intruder_up HOW [ARG]: a fresh intruder host whose momgate daemon is
# started by the function HOW (given the host and ARG), then its pbs_mom.
intruder_up() {
  mark_logs
  host_up "$INTRUDER" "${ADDR[$INTRUDER]}"
  mkdir -p "$T/$INTRUDER/momgate"
  install -m 0755 "$T/bin/libauth_momgate.so" "$T/$INTRUDER/lib/libauth_momgate.so"
  "$1" "$INTRUDER" "${2:-}"
  wait_for "the intruder's momgate daemon" 30 onhost "$INTRUDER" test -S /run/momgate/pbs.sock
  rm -rf "$(pbs_home "$INTRUDER")"
  mom_install "$INTRUDER"
  mom_start "$INTRUDER"
}

# expect_refused WHAT REASONS: pbs_comm refuses the intruder, within 30 s.
expect_refused() {
  local line
  wait_for "pbs_comm refusing $1 (${ADDR[$INTRUDER]}: $2)" 30 refused_in_logs "${ADDR[$INTRUDER]}" "$2"
  line=$(refused_in_logs "${ADDR[$INTRUDER]}" "$2")
  step "refused: $1"
  echo "  pbs_comm: ${line#*;tpp_handle_auth_handshake;}"
  host_down "$INTRUDER"
  rm -rf "${T:?}/$INTRUDER/home" "${T:?}/$INTRUDER/momgate"
}

# Daemons the intruder can run.
other_cluster() {
  onhost "$1" "$T/bin/momgate-server" init --state-dir "$(mg_state "$1")" >/dev/null 2>&1 || fail "momgate-server init on $1"
  onhost "$1" sh -c "exec '$T/bin/momgate-server' run --state-dir '$(mg_state "$1")' --listen '${ADDR[$1]}:$MG_PORT' \
    --pbs-socket /run/momgate/pbs.sock >'$T/$1/momgate/daemon.log' 2>&1" 2>/dev/null &
  disown $!
}

# copy_of H NODE [SERVER]: NODE's momgate state, copied onto H (unless H is
# NODE) and run there, with SERVER (default the real one) as its server.
copy_of() {
  local h=$1 from=$2 srv=${3:-${ADDR[$SERVER]}}
  if [ "$h" != "$from" ]; then
    mkdir -p "$(mg_state "$h")"
    # NODE's daemons may be running: a file written atomically (a
    # .NAME.tmp-* renamed over NAME) can vanish under cp, so a copy that
    # met one is made again, at most five times.
    local try
    for try in 1 2 3 4 5; do
      cp -a "$(mg_state "$from")/." "$(mg_state "$h")/" 2>/dev/null && break
      [ "$try" -lt 5 ] || fail "copy $from's momgate state onto $h"
      find "$(mg_state "$h")" -name '.*.tmp-*' -delete
    done
    find "$(mg_state "$h")" -name '.*.tmp-*' -delete # a write caught half way, not state
  fi
  rm -f "$(mg_state "$h")/admin.sock"
  onhost "$h" sh -c "exec '$T/bin/momgate-mom' run --state-dir '$(mg_state "$h")' --server '$srv:$MG_PORT' \
    --listen '${ADDR[$h]}:$MG_IM_PORT' --pbs-socket /run/momgate/pbs.sock >>'$T/$h/momgate/daemon.log' 2>&1" 2>/dev/null &
  disown $!
}

# deaf_copy_of H NODE: NODE's state on H with a server that never answers.
deaf_copy_of() { copy_of "$1" "$2" "$NOWHERE"; }

# mom_log_since_has H LINES PATTERN: H's pbs_mom logged PATTERN (grep -E)
# after its first LINES lines; prints the last such line.
mom_log_since_has() {
  cat "$(pbs_home "$1")"/mom_logs/* | tail -n +$(($2 + 1)) | grep -E "$3" | tail -n 1 | grep .
}

# stop_mom H [SIG]: stops H's pbs_mom (by the pid in its lock file) with
# SIG, default TERM, on which pbs_mom kills its jobs; on INT it leaves them
# running, for a pbs_mom -p to take them over.
stop_mom() {
  local h=$1 sig=${2:-TERM} pid
  pid=$(tr -dc '0-9\n' <"$(pbs_home "$h")/mom_priv/mom.lock" | head -n 1)
  [ -n "$pid" ] || fail "no pbs_mom pid in $h's mom.lock"
  onhost "$h" kill -"$sig" "$pid"
  wait_for "pbs_mom on $h to stop" 30 pid_gone "$h" "$pid"
}

# restart_mom H: stops H's pbs_mom and starts it again, so it must join
# pbs_comm anew.
restart_mom() {
  stop_mom "$1"
  mom_start "$1"
}

# pid_gone H PID: no process PID on H.
pid_gone() { ! onhost "$1" kill -0 "$2" 2>/dev/null; }

# joined_since ADDR: since mark_logs, pbs_comm registered the leaf at ADDR.
joined_since() {
  cat "$(pbs_home "$SERVER")"/comm_logs/* | tail -n +$((COMM_SINCE + 1)) | grep -q "Leaf registered address $1:"
}

# capture_has N CAP ADDR: CAP holds at least N TPP packets from ADDR to pbs_comm.
capture_has() {
  [ "$(python3 "$here/tpp_replay.py" --count "$2" "$3" 17001)" -ge "$1" ] 2>/dev/null
}

# run_replay: a recording of a real handshake, replayed from the recorded
# host's own address, is refused: at step 1 (momgate-server answered that
# PING before), and after momgate-server forgot it (a restart) at step 3
# (the recorded vouch echoes another handshake's challenge).
run_replay() {
  local h=${EXEC_HOSTS[0]} cap=$T/tpp.pcap tpid
  capture_start "$cap" "${HOST_PID[$SERVER]}" eth0 "tcp and src host ${ADDR[$h]} and dst port 17001"
  tpid=$CAPTURE_PID
  mark_logs
  restart_mom "$h"
  wait_for "$h's pbs_mom joining pbs_comm again" 30 joined_since "${ADDR[$h]}"
  # The leaf sent step 1, then step 3 and its join: three TPP packets.
  wait_for "tcpdump writing the handshake" 10 capture_has 3 "$cap" "${ADDR[$h]}"
  capture_stop "$tpid"
  step "captured $h's handshake with pbs_comm on the wire (tcpdump on $SERVER's eth0)"
  mark_logs
  onhost "$h" python3 "$here/tpp_replay.py" "$cap" "${ADDR[$h]}" "${ADDR[$SERVER]}" 17001 | sed 's/^/  /'
  wait_for "pbs_comm refusing the replay" 30 refused_in_logs "${ADDR[$h]}" "replay"
  step "refused: the recorded handshake, replayed from $h's own address"
  echo "  pbs_comm: $(refused_in_logs "${ADDR[$h]}" "replay" | sed 's/.*;tpp_handle_auth_handshake;//')"
  mg_server_restart
  mark_logs
  onhost "$h" python3 "$here/tpp_replay.py" "$cap" "${ADDR[$h]}" "${ADDR[$SERVER]}" 17001 | sed 's/^/  /'
  wait_for "pbs_comm refusing the replay after momgate-server's restart" 30 refused_in_logs "${ADDR[$h]}" "replay"
  step "refused: the same replay after momgate-server restarted (it no longer knows the recorded PING)"
  echo "  pbs_comm: $(refused_in_logs "${ADDR[$h]}" "replay" | sed 's/.*;tpp_handle_auth_handshake;//')"
}

run_refusals() {
  run_replay
  step "refusals: an intruder host $INTRUDER (${ADDR[$INTRUDER]}) tries to join pbs_comm"
  intruder_up other_cluster
  expect_refused "a node of another cluster (its own momgate-server and key)" "key_mismatch|auth"

  intruder_up copy_of "${EXEC_HOSTS[0]}"
  expect_refused "a copy of ${EXEC_HOSTS[0]}'s momgate state on another host (its PINGs name that host's address)" "addr_mismatch"

  local victim=${EXEC_HOSTS[1]} deleted_at
  mark_logs
  deleted_at=$SECONDS
  onhost "$SERVER" "$T/bin/momgate-qmgr" --state-dir "$(mg_state "$SERVER")" -c "delete node $victim" >/dev/null ||
    fail "momgate-qmgr delete node $victim"
  step "momgate-qmgr delete node $victim"
  # Patched (patch 6), pbs_comm's periodic check closes the connection the
  # node's pbs_mom made before the deletion; unpatched, it stays open until
  # it breaks (the restart below).
  if [ -n "$PATCHED" ]; then
    wait_for "pbs_comm closing the deleted $victim's open connection" 30 closed_in_logs "${ADDR[$victim]}"
    step "closed: pbs_comm closed the open connection of the deleted $victim, $((SECONDS - deleted_at)) s after delete node (patch 6)"
    echo "  pbs_comm: $(closed_in_logs "${ADDR[$victim]}" | sed 's/.*;tfd=/tfd=/')"
    wait_for "pbsnodes showing $victim down" 60 node_down "$victim"
    step "pbsnodes: $victim is down, with its pbs_mom still running"
  fi
  # Its momgate-mom is told and stops (exit 4): its pbs_mom, restarted,
  # has no daemon to authenticate it.
  wait_for "$victim's momgate-mom stopping when told its node was deleted" 30 \
    pid_gone "$victim" "$(cat "$T/$victim/momgate/pid")"
  local since line
  since=$(cat "$(pbs_home "$victim")"/mom_logs/* | wc -l)
  restart_mom "$victim"
  wait_for "$victim's pbs_mom failing to authenticate" 30 mom_log_since_has "$victim" "$since" "momgate: cannot reach the momgate daemon"
  line=$(mom_log_since_has "$victim" "$since" "momgate: cannot reach the momgate daemon")
  step "refused: the deleted node $victim: its momgate-mom stopped when told (exit 4); its pbs_mom cannot authenticate"
  echo "  pbs_mom: ${line#*;tpp_handle_auth_handshake;}"
  # A daemon that ignores the deletion, with the node's keys: momgate-server refuses it.
  mark_logs
  deaf_copy_of "$victim" "$victim"
  wait_for "pbs_comm refusing the deleted $victim" 60 refused_in_logs "${ADDR[$victim]}" "revoked|key_mismatch"
  step "refused: the deleted node $victim, with a momgate-mom that ignores the deletion and keeps its keys"
  echo "  pbs_comm: $(refused_in_logs "${ADDR[$victim]}" "revoked|key_mismatch" | sed 's/.*;tpp_handle_auth_handshake;//')"
  wait_for "pbsnodes showing $victim down" 60 node_down "$victim"
  step "pbsnodes: $victim is down"

  intruder_up deaf_copy_of "$victim"
  expect_refused "a copy of the deleted $victim's momgate state on another host" "revoked|key_mismatch"
  REFUSALS_DONE=1
}

# node_down H: pbs_server has H down.
node_down() {
  onhost "$SERVER" timeout 10 pbsnodes "$1" | grep -q "state = .*down"
}
