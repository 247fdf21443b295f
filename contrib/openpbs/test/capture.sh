# shellcheck shell=bash
# Captures of the hosts' link, on the bridge every host's veth joins (in
# the bridge's own namespace: the machine's interfaces are never touched).
# Every tcpdump started here is bounded by LIFETIME and stopped by
# captures_down on every exit path. Sourced by harness.sh after netns.sh.

declare -a CAPTURE_PIDS=()

# capture_start FILE NETNS_PID IFACE FILTER: tcpdump of IFACE in the network
# namespace of NETNS_PID into FILE, once it listens; CAPTURE_PID is its pid.
capture_start() {
  local file=$1 pid=$2 iface=$3 filter=$4
  timeout --signal=INT "$LIFETIME" nsenter -t "$pid" -n -- tcpdump -i "$iface" --immediate-mode -U -s 0 -w "$file" \
    "$filter" 2>"$file.log" &
  CAPTURE_PID=$!
  CAPTURE_PIDS+=("$CAPTURE_PID")
  wait_for "tcpdump listening on $iface" 10 grep -q "listening on" "$file.log"
}

# capture_stop PID: stops one capture and waits until it has written all.
capture_stop() {
  kill -INT "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# captures_down: stops every capture still running.
captures_down() {
  local p
  for p in "${CAPTURE_PIDS[@]}"; do capture_stop "$p"; done
  CAPTURE_PIDS=()
}

LINK_CAP=""

# link_capture_start: every TCP segment between the hosts, on the bridge.
link_capture_start() {
  LINK_CAP=$T/link.pcap
  capture_start "$LINK_CAP" "$LAN_PID" br0 "tcp"
  LINK_CAPTURE_PID=$CAPTURE_PID
}

link_capture_stop() {
  capture_stop "$LINK_CAPTURE_PID"
}

# link_check: with PBS_ENCRYPT_METHOD=momgate the job script's marker is in
# no TCP stream between the hosts; without it, it is (the same capture and
# scan find it in the clear, so the check can see what it looks for).
link_check() {
  local out rc=0
  out=$(python3 "$here/link_scan.py" "$LINK_CAP" "$JOB_MARKER") || rc=$?
  [ $rc -le 1 ] || fail "link_scan.py could not read $LINK_CAP: $out"
  echo "  $out"
  if [ -n "$ENCRYPT" ]; then
    [ $rc -eq 1 ] || fail "with PBS_ENCRYPT_METHOD=$ENCRYPT the job script's text is on the link"
    step "capture of the link during the job: the job script's text is on no stream (PBS_ENCRYPT_METHOD=$ENCRYPT)"
  else
    [ $rc -eq 0 ] || fail "without encryption the job script's marker should be on the link, and the capture does not show it"
    step "capture of the link during the job: the job script's text is on the wire (no PBS_ENCRYPT_METHOD)"
  fi
}
