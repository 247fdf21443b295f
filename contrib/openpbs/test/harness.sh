#!/usr/bin/env bash
# A real OpenPBS cluster in network namespaces: a server host (pbs_comm,
# pbs_server with Debian's PostgreSQL, pbs_sched) and execution hosts (one
# pbs_mom each), joined by a bridge, all on addresses of the harness's own
# inside namespaces it creates; then a non-root user's two-node job whose
# sister traffic flows (pbsdsh). Everything it creates (namespaces, every
# process in them, its temporary directory) is removed when it ends, however
# it ends; it is bounded in time.
#
#   contrib/openpbs/test/harness.sh [--auth resvport|momgate] [--encrypt] [--patched] [--moms N] [--migrate] [--keep-logs DIR]
#
# --encrypt (with --auth momgate): PBS_ENCRYPT_METHOD=momgate on every
# host, and a capture of the hosts' link during the job holds none of the
# job script's text (without it, the same check shows that it does).
# --patched: OpenPBS with contrib/openpbs/patches applied (built by
# build-patched.sh, cached by the patches' hash); with --auth momgate it
# shows that a node create sends no IS_CLUSTER_ADDRS and jobs still run
# (unpatched, the same check sees the push).
# --moms N: N execution hosts (default 2, at most 50), and only what a
# measurement needs: their pbs_moms start together once their nodes exist
# and every momgate-mom is enrolled, and the time until pbsnodes lists them
# all free is printed ("JOIN: ..."); then the job; no refusals.
# --migrate: starts on resvport with momgate installed beside it and moves
# the cluster to momgate with a job running through it, as the runbook of
# docs/OPENPBS.md 8.2 says (migrate.sh); then a new job; no refusals.
#
# Needs root, util-linux (unshare, nsenter, setpriv), iproute2, and an
# OpenPBS build from ../shared/openpbs/build.sh (PBS_EXEC, or found by
# running the script). Exit status 0: every check passed; 77: skipped
# (something it needs is missing), with the reason on stderr.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
AUTH=resvport
ENCRYPT=""
PATCHED=""
MOMS=2
MIGRATE=""
KEEP_LOGS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --auth) AUTH=$2; shift 2 ;;
    --encrypt) ENCRYPT=momgate; shift ;;
    --patched) PATCHED=1; shift ;;
    --moms) MOMS=$2; shift 2 ;;
    --migrate) MIGRATE=1; AUTH=resvport; shift ;;
    --keep-logs) KEEP_LOGS=$2; shift 2 ;;
    *) echo "harness: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$AUTH" in resvport|momgate) ;; *) echo "harness: --auth $AUTH: want resvport or momgate" >&2; exit 2 ;; esac
[ -z "$ENCRYPT" ] || [ "$AUTH" = momgate ] || { echo "harness: --encrypt needs --auth momgate" >&2; exit 2; }
[[ $MOMS =~ ^[0-9]+$ ]] && [ "$MOMS" -ge 2 ] && [ "$MOMS" -le 50 ] || { echo "harness: --moms $MOMS: want 2..50" >&2; exit 2; }

skip() { echo "harness: SKIP: $*" >&2; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, PBS daemons)"
# The captures need tcpdump: installed like build.sh installs what it needs.
if ! command -v tcpdump >/dev/null && command -v apt-get >/dev/null; then
  echo "harness: installing tcpdump (apt-get)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tcpdump >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tcpdump >/dev/null 2>&1; } || true
fi
for c in unshare nsenter setpriv ip tcpdump python3 timeout; do
  command -v "$c" >/dev/null || skip "needs $c (Debian: apt-get install util-linux iproute2 tcpdump python3 coreutils)"
done
unshare --net true 2>/dev/null || skip "cannot create network namespaces here"
if [ -z "${PBS_EXEC:-}" ]; then
  # ../shared/openpbs beside the checkout (or beside the worktrees' parent).
  build=${OPENPBS_BUILD:-}
  for d in "$repo/../shared/openpbs" "$repo/../../shared/openpbs"; do
    [ -n "$build" ] || [ ! -x "$d/build.sh" ] || build=$d/build.sh
  done
  [ -n "$build" ] && [ -x "$build" ] || skip "no ../shared/openpbs/build.sh beside $repo (set OPENPBS_BUILD or PBS_EXEC)"
  if [ -n "$PATCHED" ]; then
    PBS_EXEC=$("$here/build-patched.sh" "$build" | tail -n 1)
  else
    PBS_EXEC=$("$build" | tail -n 1)
  fi
fi
[ -x "$PBS_EXEC/sbin/pbs_server" ] || skip "no OpenPBS at PBS_EXEC=$PBS_EXEC"
command -v pg_config >/dev/null || [ -d /usr/lib/postgresql ] || skip "needs Debian's postgresql (build.sh installs it)"
PBS_VERSION=$("$PBS_EXEC/bin/qstat" --version | sed -e 's/^.* = //')

LIFETIME=${HARNESS_LIFETIME:-600} # no host outlives this many seconds
T=$(mktemp -d /tmp/mgpbs.XXXXXX)
chmod 0755 "$T"
START=$SECONDS
# shellcheck source=netns.sh
. "$here/netns.sh"
# shellcheck source=pbs.sh
. "$here/pbs.sh"
# shellcheck source=momgate.sh
. "$here/momgate.sh"
# shellcheck source=refusals.sh
. "$here/refusals.sh"
# shellcheck source=capture.sh
. "$here/capture.sh"
# shellcheck source=addrs.sh
. "$here/addrs.sh"
# shellcheck source=migrate.sh
. "$here/migrate.sh"

finish() {
  local rc=$?
  if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
    echo "harness: FAILED after $((SECONDS - START)) s; logs follow" >&2
    dump_logs >&2 || true
  fi
  if [ -n "$KEEP_LOGS" ]; then
    mkdir -p "$KEEP_LOGS" && cp -r "$T"/*/home/*_logs "$T"/*/momgate "$KEEP_LOGS"/ 2>/dev/null || true
  fi
  captures_down
  hosts_down
  if [ -n "${HARNESS_KEEP_TMP:-}" ]; then echo "harness: kept $T" >&2; else rm -rf "$T"; fi
  exit $rc
}
trap finish EXIT
trap 'exit 130' INT TERM

step() { echo "harness [$((SECONDS - START))s]: $*"; }
fail() { echo "harness: FAIL: $*" >&2; exit 1; }

# wait_for DESC SECONDS CMD...: polls CMD (every 0.2 s) until it succeeds or
# the deadline passes.
wait_for() {
  local desc=$1 limit=$2 end
  shift 2
  end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || fail "$desc: not within $limit s"
    sleep 0.2
  done
}

SERVER=pbssrv
# Execution hosts pbsn1.. at 10.201.0.11..; pbsx: the intruder
# (refusals.sh); pbsnew: a node created with no host (addrs.sh).
EXEC_HOSTS=()
declare -A ADDR=([pbssrv]=10.201.0.1 [pbsx]=10.201.0.200 [pbsnew]=10.201.0.201)
for i in $(seq 1 "$MOMS"); do
  EXEC_HOSTS+=("pbsn$i")
  ADDR[pbsn$i]=10.201.0.$((10 + i))
done
JOBUSER=pbsuser

mkdir -p "$T/etc" "$T/home/$JOBUSER"
{
  echo "127.0.0.1 localhost"
  for h in "${!ADDR[@]}"; do echo "${ADDR[$h]} $h"; done
} >"$T/etc/hosts"
cp /etc/passwd "$T/etc/passwd"
cp /etc/group "$T/etc/group"
echo "$JOBUSER:x:5001:5001:momgate harness job user:$T/home/$JOBUSER:/bin/sh" >>"$T/etc/passwd"
echo "$JOBUSER:x:5001:" >>"$T/etc/group"
chown 5001:5001 "$T/home/$JOBUSER"

step "OpenPBS $PBS_VERSION${PATCHED:+ with contrib/openpbs/patches} at $PBS_EXEC, auth $AUTH${ENCRYPT:+, encryption $ENCRYPT}, work dir $T"
lan_up
for h in "$SERVER" "${EXEC_HOSTS[@]}"; do host_up "$h" "${ADDR[$h]}"; done
step "hosts up: $SERVER ${EXEC_HOSTS[*]} on 10.201.0.0/24"

auth_setup          # per method: plugin, daemons (pbs.sh)
server_install      # pbs.conf, PBS_HOME, datastore, workq
server_start
for h in "${EXEC_HOSTS[@]}"; do auth_host_setup "$h"; mom_install "$h"; done
for h in "${EXEC_HOSTS[@]}"; do onhost "$SERVER" qmgr -c "create node $h" >/dev/null; done
join_start=$(date +%s%N)
for h in "${EXEC_HOSTS[@]}"; do mom_start "$h"; done
wait_for "every pbs_mom free in pbsnodes -a" 120 nodes_free "${EXEC_HOSTS[@]}"
join_ms=$((($(date +%s%N) - join_start) / 1000000))
step "pbsnodes -a: ${EXEC_HOSTS[*]} free"
echo "JOIN: $MOMS pbs_moms started at once, all free in pbsnodes -a after $((join_ms / 1000)).$((join_ms % 1000 / 100)) s (auth $AUTH${ENCRYPT:+, encryption $ENCRYPT}${PATCHED:+, patched}; load average $(cut -d' ' -f1-3 /proc/loadavg))"
onhost "$SERVER" pbsnodes -a | sed -n '/^[a-z]/p;/state =/p' | sed 's/^/  /'
[ "$AUTH" != momgate ] || momgate_check_joined
if [ -n "$MIGRATE" ]; then
  run_migration
  AUTH=momgate
  momgate_check_joined
  run_two_node_job
  momgate_check_user "$JOBUSER" "${EXEC_HOSTS[0]}"
  step "PASS: moved from resvport to momgate with a job running through it; a new job ran on momgate ($((SECONDS - START)) s)"
  exit 0
fi
if [ "$MOMS" -gt 2 ]; then
  run_two_node_job
  step "PASS: $MOMS pbs_moms joined and a two-node job of $JOBUSER ran with auth $AUTH ($((SECONDS - START)) s)"
  exit 0
fi
addrs_after_create

run_two_node_job
[ "$AUTH" != momgate ] || momgate_check_user "$JOBUSER" "${EXEC_HOSTS[0]}"
[ "$AUTH" != momgate ] || run_refusals
[ "$AUTH" != momgate ] || addrs_takeover
[ "$AUTH" != momgate ] || addrs_final_check
step "PASS: a two-node job of $JOBUSER ran on ${EXEC_HOSTS[*]} with auth $AUTH${ENCRYPT:+ and encryption $ENCRYPT (no job script text on the link)}${PATCHED:+ on patched OpenPBS$(no_list_expected && echo " (no address list pushed)")}${REFUSALS_DONE:+; every intruder was refused} ($((SECONDS - START)) s)"
