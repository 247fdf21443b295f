# shellcheck shell=bash
# momgate in the harness's cluster: momgate-server on the server host
# (answering the plugin there), a momgate-mom on each execution host
# enrolled with a token from create node, and libauth_momgate.so in every
# host's PBS_EXEC/lib. Sourced by harness.sh; uses its variables.

MG_PORT=15101    # momgate-server's control port (pbs_server has 15001)
MG_IM_PORT=15103 # momgate-mom's IM port (pbs_mom has 15002 and 15003)

mg_state() { echo "$T/$1/momgate/state"; }

# momgate_setup: build, install the plugin on every host, start the server.
momgate_setup() {
  local h
  step "building momgate and libauth_momgate.so"
  (cd "$repo" && make -s build plugin BIN="$T/bin" >"$T/build.log" 2>&1) || { cat "$T/build.log" >&2; fail "make build plugin"; }
  for h in "$SERVER" "${EXEC_HOSTS[@]}"; do
    install -m 0755 "$T/bin/libauth_momgate.so" "$T/$h/lib/libauth_momgate.so"
    mkdir -p "$T/$h/momgate"
  done
  onhost "$SERVER" "$T/bin/momgate-server" init --state-dir "$(mg_state "$SERVER")" >"$T/$SERVER/momgate/init.log" 2>&1 ||
    { cat "$T/$SERVER/momgate/init.log" >&2; fail "momgate-server init"; }
  mg_server_start
  step "momgate-server up on $SERVER (${ADDR[$SERVER]}:$MG_PORT, plugin socket /run/momgate/pbs.sock)"
}

# mg_server_start: momgate-server on the server host; its pid (in the
# host's PID namespace) in momgate/pid.
mg_server_start() {
  onhost "$SERVER" sh -c "echo \$\$ >'$T/$SERVER/momgate/pid'; exec '$T/bin/momgate-server' run --state-dir '$(mg_state "$SERVER")' \
    --listen '${ADDR[$SERVER]}:$MG_PORT' --pbs-socket /run/momgate/pbs.sock --pbs-host-name '$SERVER' \
    --audit-log '$T/$SERVER/momgate/audit.log' >>'$T/$SERVER/momgate/daemon.log' 2>&1" 2>/dev/null &
  disown $! # it ends with the host: no "Killed" report then
  wait_for "momgate-server answering on $SERVER" 30 onhost "$SERVER" test -S /run/momgate/pbs.sock
}

# mg_server_restart: stops momgate-server (SIGTERM, by its pid) and starts
# it again: it forgets what it keeps in memory only.
mg_server_restart() {
  local pid
  pid=$(cat "$T/$SERVER/momgate/pid")
  onhost "$SERVER" kill "$pid"
  wait_for "momgate-server to stop" 30 pid_gone "$SERVER" "$pid"
  mg_server_start
}

momgate_conf_lines() {
  # Every host uses momgate; PBS_AUTH_SERVICE_USERS stays root.
  :
}

# momgate_host_setup H: create node H in momgate, enroll H's momgate-mom.
momgate_host_setup() {
  local h=$1 token
  token=$(onhost "$SERVER" "$T/bin/momgate-qmgr" --state-dir "$(mg_state "$SERVER")" --json -c "create node $h Mom=${ADDR[$h]},Port=$MG_IM_PORT" |
    sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
  [ -n "$token" ] || fail "momgate-qmgr create node $h printed no token"
  onhost "$h" sh -c "echo \$\$ >'$T/$h/momgate/pid'; exec '$T/bin/momgate-mom' run --state-dir '$(mg_state "$h")' \
    --server '${ADDR[$SERVER]}:$MG_PORT' --listen '${ADDR[$h]}:$MG_IM_PORT' --enroll '$token' --pbs-socket /run/momgate/pbs.sock \
    --audit-log '$T/$h/momgate/audit.log' >'$T/$h/momgate/daemon.log' 2>&1" 2>/dev/null &
  disown $!
  wait_for "momgate-mom on $h enrolled and answering" 30 mg_enrolled "$h"
  step "momgate-mom enrolled on $h"
}

# mg_enrolled H: H's momgate-mom is connected to the server and serves the plugin.
mg_enrolled() {
  onhost "$1" test -S /run/momgate/pbs.sock &&
    onhost "$1" "$T/bin/momgate-mom" status --state-dir "$(mg_state "$1")" --json | grep -q '"connected": *true'
}

# mg_audit_has DETAIL NODE: momgate-server's audit log has an accepted
# pbs handshake with that detail from node NODE (", encrypted" after it
# with --encrypt: every connection is).
mg_audit_has() {
  grep 'channel=pbs' "$T/$SERVER/momgate/audit.log" | grep 'outcome=accepted' |
    grep -F "detail=\"$1${ENCRYPT:+, encrypted}\"" | grep -q "node=$2 "
}

# momgate_check_joined: every pbs_mom (and pbs_server) joined pbs_comm by
# a momgate handshake, as root; PBS did not fall back to anything else.
momgate_check_joined() {
  local h
  for h in "$SERVER" "${EXEC_HOSTS[@]}"; do
    mg_audit_has "service connection of root (uid 0)" "$h" || fail "no momgate service handshake from $h in momgate-server's audit log"
  done
  step "momgate-server's audit log: service handshakes (TPP, as root) from $SERVER ${EXEC_HOSTS[*]}"
}

# momgate_check_user U H: a user connection of U from H was vouched for by
# H's momgate daemon (the uid it read with SO_PEERCRED) and checked by
# momgate-server, as the plugin told pbs_server.
momgate_check_user() {
  local uid
  uid=$(awk -F: -v u="$1" '$1 == u {print $3}' "$T/etc/passwd")
  mg_audit_has "user connection of $1 (uid $uid)" "$2" || fail "no momgate user handshake of $1 from $2 in momgate-server's audit log"
  grep -h "libauth_momgate;authenticated $1 (user) on node $2" "$(pbs_home "$SERVER")"/server_logs/* >/dev/null ||
    fail "pbs_server's log does not say the plugin authenticated $1 on $2"
  step "$1's commands on $2 were vouched for by momgate (uid $uid from SO_PEERCRED): momgate-server's audit log and pbs_server's log"
}
