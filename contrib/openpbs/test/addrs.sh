# shellcheck shell=bash
# The address list that momgate replaces: pbs_server's IS_CLUSTER_ADDRS
# multicast after a node create, and the list in IS_REPLYHELLO. Observed in
# pbs_mom's log, where DEBUG3 ($logevent 0x5ff, pbs.sh) names every server
# request by its number (IS_CLUSTER_ADDRS is 3) and every address added to
# the MOM's list ("Adding IP address A as authorized"), and in pbs_server's
# log. Unpatched, or patched with another method than momgate, the harness
# sees the push; patched with momgate (--patched --auth momgate), it sees
# none, and jobs still run. Sourced by harness.sh.

NEW_NODE=pbsnew # in /etc/hosts, never up: a create node that changes the list

# no_list_expected: the patches are in and momgate is the only method.
no_list_expected() { [ -n "$PATCHED" ] && [ "$AUTH" = momgate ]; }

mom_log() { cat "$(pbs_home "$1")"/mom_logs/* 2>/dev/null; }
server_log() { cat "$(pbs_home "$SERVER")"/server_logs/* 2>/dev/null; }

# mom_log_has_since H LINES PATTERN: H's pbs_mom logged PATTERN (grep -E)
# after its first LINES lines.
mom_log_has_since() { mom_log "$1" | tail -n +$(($2 + 1)) | grep -qE "$3"; }

# addrs_after_create: create node NEW_NODE while every pbs_mom is up.
# Unpatched: IS_CLUSTER_ADDRS reaches the MOMs (and pbs_server holds every
# node down until it is sent). Patched: pbs_server says it sends none, and
# the nodes stay free.
addrs_after_create() {
  local m=${EXEC_HOSTS[0]} since
  since=$(mom_log "$m" | wc -l)
  onhost "$SERVER" qmgr -c "create node $NEW_NODE" >/dev/null || fail "qmgr create node $NEW_NODE"
  if no_list_expected; then
    wait_for "pbs_server's log saying it sends no IS_CLUSTER_ADDRS" 30 \
      eval 'server_log | grep -q "momgate: no IS_CLUSTER_ADDRS after a node create"'
    nodes_free "${EXEC_HOSTS[@]}" || fail "after create node $NEW_NODE, ${EXEC_HOSTS[*]} are not free"
    step "create node $NEW_NODE: pbs_server sends no IS_CLUSTER_ADDRS (its log: \"momgate: no IS_CLUSTER_ADDRS after a node create\"); ${EXEC_HOSTS[*]} stay free"
  else
    wait_for "IS_CLUSTER_ADDRS reaching $m's pbs_mom after create node $NEW_NODE" 30 \
      mom_log_has_since "$m" "$since" ";Received request: 3$"
    step "create node $NEW_NODE: pbs_server pushed the address list to $m (IS_CLUSTER_ADDRS, request 3 in its pbs_mom log)"
    wait_for "every pbs_mom free again after the push" 60 nodes_free "${EXEC_HOSTS[@]}"
  fi
}

# comm_log_since_has PATTERN: since mark_logs, pbs_comm logged PATTERN
# (grep -E); prints the last such line.
comm_log_since_has() {
  cat "$(pbs_home "$SERVER")"/comm_logs/* | tail -n +$((COMM_SINCE + 1)) | grep -E "$1" | tail -n 1 | grep .
}

# addrs_takeover: a member runs its pbs_mom as another node, VICTIM
# (PBS_LEAF_NAME=VICTIM: its TPP join lists VICTIM's address, which is
# what its peers would know it by), while its momgate handshake proves its
# own. Unpatched pbs_comm registers the victim's address for it; patched
# (a) does not. Run last: VICTIM was deleted by the refusals, its pbs_mom
# is refused, so the address is free to take.
addrs_takeover() {
  local h=${EXEC_HOSTS[0]} v=${EXEC_HOSTS[1]} line
  mark_logs
  stop_mom "$h"
  ONHOST_ENV="PBS_LEAF_NAME=$v" mom_start "$h"
  if [ -n "$PATCHED" ]; then
    wait_for "pbs_comm refusing $h's join as $v" 30 \
      comm_log_since_has "momgate: leaf from ${ADDR[$h]}:[0-9]+ joined with address ${ADDR[$v]}:"
    line=$(comm_log_since_has "momgate: leaf from ${ADDR[$h]}:[0-9]+ joined with address ${ADDR[$v]}:")
    ! joined_since "${ADDR[$v]}" || fail "patched pbs_comm registered $v's address for $h"
    step "patched: $h's pbs_mom, run as $v, is not given $v's address (its handshake proved ${ADDR[$h]} only)"
    echo "  pbs_comm: momgate: ${line#*, momgate: }"
  else
    wait_for "pbs_comm registering ${ADDR[$v]} for $h" 30 joined_since "${ADDR[$v]}"
    step "unpatched: $h's pbs_mom, run as $v, registered $v's address ${ADDR[$v]} at pbs_comm, though its handshake proved ${ADDR[$h]} (the patches' (a) stops this)"
  fi
  stop_mom "$h"
}

# addrs_final_check: patched, no pbs_mom ever received IS_CLUSTER_ADDRS or
# a sister's address, in the whole run (jobs, pbsdsh, refusals).
addrs_final_check() {
  local h o
  no_list_expected || return 0
  for h in "${EXEC_HOSTS[@]}"; do
    ! mom_log "$h" | grep -q ";Received request: 3$" || fail "$h's pbs_mom received IS_CLUSTER_ADDRS from the patched pbs_server"
    for o in "${EXEC_HOSTS[@]}"; do
      [ "$o" != "$h" ] || continue
      ! mom_log "$h" | grep -qF "Adding IP address ${ADDR[$o]} as authorized" ||
        fail "$h's pbs_mom was given $o's address (${ADDR[$o]}) by the patched pbs_server"
    done
  done
  step "patched: no pbs_mom received IS_CLUSTER_ADDRS or a sister's address in the whole run, and $JOBUSER's job with pbsdsh ran"
}
