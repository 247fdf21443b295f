# shellcheck shell=bash
# The move from resvport to momgate of docs/OPENPBS.md 8.2, with a job
# running through it: the cluster starts on resvport with momgate
# installed beside it (plugin, momgate-server, every momgate-mom enrolled),
# a two-node job starts and waits; the server host accepts both methods,
# then switches, then each execution host switches (SIGINT, pbs_mom -p: its job
# kept), then every host accepts momgate alone. The job, released only
# then, ends well (its end is sister traffic too: the mother superior
# tells its sister over TPP); every daemon has joined by momgate; a new job
# runs pbsdsh across both nodes. The old job does not start tasks on its
# sister after the move: once its mother superior's pbs_mom has restarted,
# OpenPBS's sister cannot reach the job's output port (it connects to port
# 0, "open_demux"), whatever the authentication. Sourced by harness.sh
# (--migrate).

# conf_set H KEY VALUE: sets KEY=VALUE in H's pbs.conf.
conf_set() {
  local f=$T/$1/etc/pbs.conf
  if grep -q "^$2=" "$f"; then sed -i "s|^$2=.*|$2=$3|" "$f"; else echo "$2=$3" >>"$f"; fi
}

# lock_pid H FILE: the pid a PBS daemon wrote to its lock file.
lock_pid() { tr -dc '0-9\n' <"$(pbs_home "$1")/$2" | head -n 1; }

# stop_by_lock H FILE WHAT: stops the daemon of that lock file, by its pid.
stop_by_lock() {
  local pid
  pid=$(lock_pid "$1" "$2")
  [ -n "$pid" ] || fail "no $3 pid in $1's $2"
  onhost "$1" kill "$pid"
  wait_for "$3 on $1 to stop" 30 pid_gone "$1" "$pid"
}

# server_host_restart: pbs_comm, pbs_server (qterm -t quick keeps the jobs
# running) and pbs_sched, in that order, as the runbook says; then waits
# until every pbs_mom has joined the new pbs_comm again (their TPP
# connections broke with it: a job's sister traffic needs them back).
server_host_restart() {
  local spid h
  mark_logs
  stop_by_lock "$SERVER" server_priv/comm.lock pbs_comm
  onhost "$SERVER" timeout 30 pbs_comm || fail "pbs_comm did not start again"
  spid=$(lock_pid "$SERVER" server_priv/server.lock)
  onhost "$SERVER" timeout 60 qterm -t quick >/dev/null || fail "qterm -t quick"
  wait_for "pbs_server to stop" 60 pid_gone "$SERVER" "$spid"
  stop_by_lock "$SERVER" sched_priv/sched.lock pbs_sched
  onhost "$SERVER" timeout 60 pbs_server || fail "pbs_server did not start again"
  onhost "$SERVER" timeout 30 pbs_sched || fail "pbs_sched did not start again"
  wait_for "pbs_server answering qstat -B again" 60 onhost "$SERVER" timeout 10 qstat -B
  for h in "$SERVER" "${EXEC_HOSTS[@]}"; do
    wait_for "$h joining the restarted pbs_comm" 60 joined_since "${ADDR[$h]}"
  done
}

# job_state ID: the state letter of job ID, as pbs_server reports it.
job_state() {
  onhost "$SERVER" timeout 10 qstat -f "$1" 2>/dev/null | sed -n 's/^ *job_state = //p'
}
job_running() { [ "$(job_state "$1")" = R ]; }
job_gone() { ! onhost "$SERVER" timeout 10 qstat "$1" >/dev/null 2>&1 && onhost "$SERVER" timeout 10 qstat -B >/dev/null 2>&1; }

# nodes_up H...: every H is in pbsnodes and not down (a node running a job
# may be job-busy rather than free).
nodes_up() {
  local out h st
  out=$(onhost "$SERVER" timeout 10 pbsnodes -a) || return 1
  for h in "$@"; do
    st=$(echo "$out" | awk -v h="$h" '$0 == h {n = 1; next} /^[^ ]/ {n = 0} n && /state = / {print $3}')
    [ -n "$st" ] && [ "${st#*down}" = "$st" ] && [ "${st#*offline}" = "$st" ] || return 1
  done
}

run_migration() {
  local home=$T/home/$JOBUSER out id h
  out=$home/long.out
  rm -f "$home/release" "$home/long.started"
  cat >"$home/long.sh" <<EOF
#!/bin/sh
#PBS -N mglong
#PBS -l select=2:ncpus=1
#PBS -l place=scatter
#PBS -j oe
#PBS -o $SERVER:$out
echo "started on \$(hostname)"
touch $home/long.started
# Waits (at most 300 s) until the harness has moved every host to momgate.
i=0
while [ ! -e $home/release ] && [ \$i -lt 1500 ]; do sleep 0.2; i=\$((i + 1)); done
[ -e $home/release ] || { echo "never released"; exit 3; }
echo "released on \$(hostname)"
EOF
  chown 5001:5001 "$home/long.sh"
  id=$(asuser "${EXEC_HOSTS[0]}" "$JOBUSER" timeout 30 qsub long.sh) || fail "qsub long.sh: $id"
  # Started for real: its script ran (a first attempt to start it can fail
  # while the MOMs are still settling, and pbs_server then requeues it).
  wait_for "job $id running" 90 test -e "$home/long.started"
  job_running "$id" || fail "job $id started but is not running"
  step "on resvport: $JOBUSER's two-node job $id is running; the move to momgate starts"

  conf_set "$SERVER" PBS_SUPPORTED_AUTH_METHODS resvport,momgate
  server_host_restart
  job_running "$id" || fail "job $id is not running after the server host's restart"
  for h in "${EXEC_HOSTS[@]}"; do conf_set "$h" PBS_SUPPORTED_AUTH_METHODS resvport,momgate; done
  step "1-2: every host accepts resvport and momgate (pbs_comm, pbs_server restarted; job $id runs)"

  conf_set "$SERVER" PBS_AUTH_METHOD momgate
  server_host_restart
  wait_for "the server host's daemons joining pbs_comm by momgate" 30 mg_audit_has "service connection of root (uid 0)" "$SERVER"
  step "3: the server host uses momgate (its service handshakes in momgate-server's audit log)"

  for h in "${EXEC_HOSTS[@]}"; do
    conf_set "$h" PBS_AUTH_METHOD momgate
    stop_mom "$h" INT
    ONHOST_ENV="" onhost "$h" timeout 30 pbs_mom -p || fail "pbs_mom -p on $h"
    wait_for "$h's pbs_mom joining pbs_comm by momgate" 30 mg_audit_has "service connection of root (uid 0)" "$h"
    wait_for "$h up again in pbsnodes" 60 nodes_up "$h"
    job_running "$id" || fail "job $id is not running after $h's pbs_mom moved to momgate"
  done
  step "4: ${EXEC_HOSTS[*]} moved to momgate one by one (pbs_mom -p); job $id kept running"

  for h in "$SERVER" "${EXEC_HOSTS[@]}"; do conf_set "$h" PBS_SUPPORTED_AUTH_METHODS momgate; done
  server_host_restart
  wait_for "every pbs_mom up after the last restart" 60 nodes_up "${EXEC_HOSTS[@]}"
  job_running "$id" || fail "job $id is not running after the move"
  step "5: every host accepts momgate alone; job $id still running"

  touch "$home/release"
  wait_for "job $id to end" 120 job_gone "$id"
  wait_for "job $id's output" 30 test -s "$out"
  sed 's/^/  /' "$out"
  grep -qE "^released on pbsn[0-9]+$" "$out" || fail "job $id did not end as its script says"
  step "job $id, started on resvport, ran through the move and ended on momgate"
}
