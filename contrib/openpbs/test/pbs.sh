# shellcheck shell=bash
# OpenPBS on the harness's hosts: configuration, installation of PBS_HOME,
# daemons, the job. Sourced by harness.sh after netns.sh; uses its
# variables (T, PBS_EXEC, PBS_VERSION, SERVER, EXEC_HOSTS, AUTH, JOBUSER).

pbs_home() { echo "$T/$1/home"; }

# pbs_conf HOST ROLE: writes HOST's pbs.conf (in its private PBS_EXEC/etc).
pbs_conf() {
  local h=$1 role=$2 server=0 mom=0
  case "$role" in server) server=1 ;; mom) mom=1 ;; esac
  {
    echo "PBS_EXEC=$PBS_EXEC"
    echo "PBS_HOME=$(pbs_home "$h")"
    echo "PBS_SERVER=$SERVER"
    echo "PBS_START_SERVER=$server"
    echo "PBS_START_SCHED=$server"
    echo "PBS_START_COMM=$server"
    echo "PBS_START_MOM=$mom"
    echo "PBS_AUTH_METHOD=$AUTH"
    echo "PBS_SUPPORTED_AUTH_METHODS=$AUTH"
    [ -z "$ENCRYPT" ] || echo "PBS_ENCRYPT_METHOD=$ENCRYPT"
    auth_conf_lines "$h" "$role"
  } >"$T/$h/etc/pbs.conf"
}

server_install() {
  local home
  home=$(pbs_home "$SERVER")
  pbs_conf "$SERVER" server
  onhost "$SERVER" install -d -o postgres -g postgres -m 2775 /run/postgresql
  onhost "$SERVER" timeout 60 "$PBS_EXEC/libexec/pbs_postinstall" server "$PBS_VERSION" "$PBS_EXEC" "$home" postgres sameconf \
    >"$T/$SERVER/postinstall.log" 2>&1 || fail "pbs_postinstall server (see $T/$SERVER/postinstall.log)"
  step "pbs_habitat: datastore, queue workq"
  # PBS's own datastore set-up races PostgreSQL's start on a loaded machine
  # ("createdb: ... the database system is starting up"), and a second run
  # would take the half-made datastore for an old one: on that failure, stop
  # that PostgreSQL, remove the datastore and run it again (three tries).
  local try
  for try in 1 2 3; do
    onhost "$SERVER" timeout 180 "$PBS_EXEC/libexec/pbs_habitat" >"$T/$SERVER/habitat.log" 2>&1 && return 0
    grep -q "the database system is starting up" "$T/$SERVER/habitat.log" || break
    echo "harness: pbs_habitat lost PBS's race with PostgreSQL's start (try $try); again" >&2
    datastore_reset "$home"
  done
  cat "$T/$SERVER/habitat.log" >&2
  fail "pbs_habitat"
}

# datastore_reset HOME: stops the PostgreSQL of HOME's datastore (by the pid
# in its postmaster.pid) and removes the datastore.
datastore_reset() {
  local ds=$1/datastore pid
  pid=$(head -n 1 "$ds/postmaster.pid" 2>/dev/null || true)
  if [ -n "$pid" ]; then
    onhost "$SERVER" kill -TERM "$pid" 2>/dev/null || true
    wait_for "the datastore's PostgreSQL to stop" 30 pid_gone "$SERVER" "$pid"
  fi
  rm -rf "$ds"
}

server_start() {
  onhost "$SERVER" timeout 30 pbs_comm || fail "pbs_comm did not start"
  onhost "$SERVER" timeout 60 pbs_server || fail "pbs_server did not start"
  onhost "$SERVER" timeout 30 pbs_sched || fail "pbs_sched did not start"
  wait_for "pbs_server answering qstat -B" 60 onhost "$SERVER" timeout 10 qstat -B
  # Scheduling every 2 s rather than 10 minutes: the job starts at once.
  # flatuid: a user is the same user on every host (jobs come from the
  # execution hosts too).
  onhost "$SERVER" qmgr -c "set server scheduler_iteration = 2" -c "set server flatuid = True" >/dev/null
  step "pbs_comm, pbs_server, pbs_sched up on $SERVER"
}

mom_install() {
  local h=$1 home
  home=$(pbs_home "$h")
  pbs_conf "$h" mom
  onhost "$h" timeout 60 "$PBS_EXEC/libexec/pbs_postinstall" execution "$PBS_VERSION" "$PBS_EXEC" "$home" sameconf \
    >"$T/$h/postinstall.log" 2>&1 || fail "pbs_postinstall execution on $h (see $T/$h/postinstall.log)"
  {
    echo "\$clienthost $SERVER"
    # 0x5ff: with DEBUG3, which logs each server request by number (addrs.sh).
    echo "\$logevent 0x5ff"
    # Every host sees the harness's directory: output files are copied, not sent.
    echo "\$usecp *:$T/ $T/"
  } >"$home/mom_priv/config"
}

mom_start() {
  onhost "$1" timeout 30 pbs_mom || fail "pbs_mom did not start on $1"
}

# nodes_free H...: every H is listed with state free.
nodes_free() {
  local out h
  out=$(onhost "$SERVER" timeout 10 pbsnodes -a) || return 1
  for h in "$@"; do
    echo "$out" | awk -v h="$h" '$0 == h {n = 1; next} /^[^ ]/ {n = 0} n && /state = / {print $3}' | grep -qx free || return 1
  done
}

# run_two_node_job: JOBUSER submits from the first execution host a job on
# two execution hosts (one chunk each) that runs hostname on both through
# pbsdsh (mother superior to sister over TPP), and waits for it to end.
# The hosts' link is captured meanwhile: the job script carries a marker
# that only its text holds, and link_check looks for it on the wire.
run_two_node_job() {
  local home out
  home="$T/home/$JOBUSER"
  out="$home/job.out"
  JOB_MARKER="momgate-marker-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
  cat >"$home/job.sh" <<EOF
#!/bin/sh
# $JOB_MARKER: a string that only this script's text holds
#PBS -N mgjob
#PBS -l select=2:ncpus=1
#PBS -l place=scatter
#PBS -j oe
#PBS -o $SERVER:$out
echo "mother superior \$(hostname)"
$PBS_EXEC/bin/pbsdsh -- /bin/sh -c 'echo "pbsdsh on \$(hostname)"'
EOF
  chown 5001:5001 "$home/job.sh"
  link_capture_start
  step "$JOBUSER submits a two-node job on ${EXEC_HOSTS[0]} (qsub -W block=true)"
  asuser "${EXEC_HOSTS[0]}" "$JOBUSER" timeout 120 qsub -W block=true job.sh >"$T/qsub.out" 2>&1 ||
    { cat "$T/qsub.out" >&2; fail "qsub -W block=true (job failed or did not end in 120 s)"; }
  # The MOM copies the output file after the job's end is reported.
  wait_for "job output $out" 30 test -s "$out"
  link_capture_stop
  step "job $(head -n 1 "$T/qsub.out") ended; its output:"
  sed 's/^/  /' "$out"
  # Two hosts ran it (the two with --moms 2): the mother superior and a
  # sister, each once.
  local ms
  ms=$(sed -n 's/^mother superior //p' "$out")
  grep -qx "pbsdsh on $ms" "$out" || fail "job output has no line from pbsdsh on the mother superior $ms"
  [ "$(grep -E '^pbsdsh on pbsn[0-9]+$' "$out" | sort -u | wc -l)" -eq 2 ] ||
    fail "job output does not have pbsdsh lines from two hosts"
  link_check
}

dump_logs() {
  local f
  for f in "$T"/*/home/*_logs/* "$T"/*/momgate/*.log; do
    [ -f "$f" ] || continue
    echo "==== ${f#"$T"/} (last 30 lines)"
    tail -n 30 "$f"
  done
}

# Authentication methods. auth_setup runs before PBS is installed;
# auth_conf_lines adds a host's pbs.conf lines.
auth_setup() {
  if [ "$AUTH" = momgate ] || [ -n "$MIGRATE" ]; then momgate_setup; fi
}

auth_conf_lines() {
  case "$AUTH" in
    momgate) momgate_conf_lines "$@" ;;
  esac
}

# auth_host_setup H: an execution host's part, before its pbs_mom starts.
auth_host_setup() {
  if [ "$AUTH" = momgate ] || [ -n "$MIGRATE" ]; then momgate_host_setup "$@"; fi
}
