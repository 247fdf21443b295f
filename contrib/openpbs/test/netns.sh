# shellcheck shell=bash
# Hosts for the OpenPBS harness: each host is a set of namespaces (network,
# mount, UTS, IPC, PID) held open by one process, so that a host has its own
# address, hostname, /etc/hosts, /etc/passwd, /run and PBS configuration,
# and killing that one process ends everything that ran on the host (the
# kernel kills a PID namespace with its first process). Hosts are joined by
# veth pairs to a bridge that lives in a namespace of its own: nothing is
# created in the machine's own network namespace, and nothing outside the
# harness's temporary directory is written.
#
# Sourced by harness.sh. Needs: T (temporary directory), LIFETIME (seconds a
# host lives at most, so a harness that is killed hard still goes away).

declare -A HOST_PID=()   # host name -> PID of the host's first process (PID 1 inside)
declare -A HOST_ADDR=()  # host name -> IPv4 address
declare -a HOST_UNSHARE=() # PIDs of the unshare processes (one per host and the bridge)
LAN_PID=""

# holder UNSHARE-OPTIONS...: starts the namespaces' first process and sets
# HOLDER_PID to it: bash that exits after LIFETIME seconds (reaping orphans
# meanwhile, as a PID 1 must); the kernel then kills whatever still runs in
# its PID namespace.
holder() {
  local u i c=""
  unshare "$@" --fork --kill-child bash -c "end=\$((SECONDS + $LIFETIME)); while [ \$SECONDS -lt \$end ]; do sleep 1; done" \
    </dev/null >/dev/null 2>&1 &
  u=$!
  HOST_UNSHARE+=("$u")
  for i in $(seq 1 200); do
    c=$(awk '{print $1}' "/proc/$u/task/$u/children" 2>/dev/null || true)
    [ -z "$c" ] || break
    sleep 0.05
  done
  [ -n "$c" ] || { echo "netns: unshare $u started no process in 10 s" >&2; return 1; }
  HOLDER_PID=$c
}

# lan_up: the bridge every host's veth joins.
lan_up() {
  holder --net --pid --mount-proc || return 1
  LAN_PID=$HOLDER_PID
  nsenter -t "$LAN_PID" -n -- ip link add br0 type bridge || return 1
  nsenter -t "$LAN_PID" -n -- ip link set br0 up || return 1
  nsenter -t "$LAN_PID" -n -- ip link set lo up
}

# host_up NAME ADDR: a host with hostname NAME and address ADDR/24 on eth0,
# its private /etc/hosts, /etc/passwd, /etc/group (from $T/etc), and a
# private, empty /run and /var/tmp (pbs_mom makes each job's TMPDIR there,
# /var/tmp/pbs.JOBID: hosts sharing it collide on a job's sister). PBS_EXEC/etc is replaced by $T/NAME/etc, where the
# host's pbs.conf lives: PBS's compiled-in path then names the host's own
# file (a job's pbsdsh reads it), and onhost sets PBS_CONF_FILE to it for
# PBS's wrapper scripts, whose default is /etc/pbs.conf. PBS_EXEC/lib is
# replaced by $T/NAME/lib, links to the real one, so that a plugin copied
# there is PBS_EXEC/lib/libauth_NAME.so on that host alone.
host_up() {
  local name=$1 addr=$2 pid
  holder --net --mount --uts --ipc --pid --mount-proc --propagation private || return 1
  pid=$HOLDER_PID
  HOST_PID[$name]=$pid
  HOST_ADDR[$name]=$addr
  nsenter -t "$LAN_PID" -n -- ip link add "v-$name" type veth peer name eth0 netns "$pid" || return 1
  nsenter -t "$LAN_PID" -n -- ip link set "v-$name" master br0 up || return 1
  nsenter -t "$pid" -n -m -u -- sh -ec "
    hostname '$name'
    ip link set lo up
    ip addr add '$addr/24' dev eth0
    ip link set eth0 up
    mount --bind '$T/etc/hosts' /etc/hosts
    mount --bind '$T/etc/passwd' /etc/passwd
    mount --bind '$T/etc/group' /etc/group
    mount -t tmpfs -o mode=0755 tmpfs /run
    mount -t tmpfs -o mode=1777 tmpfs /var/tmp
    mkdir -p '$T/$name/etc'
    cp -a '$PBS_EXEC/etc/.' '$T/$name/etc/'
    mount --bind '$T/$name/etc' '$PBS_EXEC/etc'
    mkdir -p '$T/$name/lib' '$T/$name/lib.orig'
    mount --bind '$PBS_EXEC/lib' '$T/$name/lib.orig'
    for f in '$T/$name/lib.orig'/*; do ln -sfn \"\$f\" '$T/$name/lib/'; done
    mount --bind '$T/$name/lib' '$PBS_EXEC/lib'
  "
}

# host_down NAME: ends one host (everything on it) and waits until its
# veth is gone, so that host_up NAME can make it again.
host_down() {
  local name=$1 pid=${HOST_PID[$1]} i
  kill -KILL "$pid" 2>/dev/null || true
  for i in $(seq 1 200); do
    if [ ! -e "/proc/$pid" ] && ! nsenter -t "$LAN_PID" -n -- ip link show "v-$name" >/dev/null 2>&1; then
      unset "HOST_PID[$name]"
      return 0
    fi
    sleep 0.05
  done
  echo "netns: host $name did not go away in 10 s" >&2
  return 1
}

# onhost NAME CMD...: runs CMD on host NAME as root, with a clean
# environment.
onhost() {
  local name=$1
  shift
  nsenter -t "${HOST_PID[$name]}" -n -m -u -i -p -- \
    env -i PATH="$PBS_EXEC/bin:$PBS_EXEC/sbin:/usr/sbin:/usr/bin:/sbin:/bin" HOME=/root LANG=C.UTF-8 PBS_CONF_FILE="$PBS_EXEC/etc/pbs.conf" \
    ${ONHOST_ENV:-} "$@"
}

# asuser NAME USER CMD...: runs CMD on host NAME as USER (uid and gid from
# the harness's passwd file), with that user's home and a clean environment.
asuser() {
  local name=$1 user=$2 uid gid home
  shift 2
  uid=$(awk -F: -v u="$user" '$1 == u {print $3}' "$T/etc/passwd")
  gid=$(awk -F: -v u="$user" '$1 == u {print $4}' "$T/etc/passwd")
  home=$(awk -F: -v u="$user" '$1 == u {print $6}' "$T/etc/passwd")
  nsenter -t "${HOST_PID[$name]}" -n -m -u -i -p -- \
    setpriv --reuid "$uid" --regid "$gid" --init-groups \
    env -i PATH="$PBS_EXEC/bin:/usr/bin:/bin" PBS_CONF_FILE="$PBS_EXEC/etc/pbs.conf" HOME="$home" USER="$user" LOGNAME="$user" LANG=C.UTF-8 \
    ${ONHOST_ENV:-} sh -c 'cd "$HOME" && exec "$@"' sh "$@"
}

# hosts_down: ends every host and the bridge (their PID namespaces take
# every process with them).
hosts_down() {
  local p
  for p in "${HOST_PID[@]}" $LAN_PID; do
    kill -KILL "$p" 2>/dev/null || true
  done
  for p in "${HOST_UNSHARE[@]}"; do
    wait "$p" 2>/dev/null || true
  done
}
