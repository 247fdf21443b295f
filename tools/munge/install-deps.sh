#!/usr/bin/env bash
# Makes sure what the MUNGE part of `make bench-munge` needs is here:
# munged and remunge (Debian package munge), munge.h and libmunge.so
# (libmunge-dev), and Debian's gcc (gcc, libc6-dev). Installs what is
# missing with apt-get when run as root; otherwise, or if apt-get fails,
# prints what is missing and exits 1. The package's own munged is never
# started (a policy-rc.d refuses service starts during the install):
# the benchmark runs its own on a private socket.
set -euo pipefail

missing() {
  local pkgs=()
  { command -v munged >/dev/null || [ -x /usr/sbin/munged ]; } || pkgs+=(munge)
  command -v remunge >/dev/null || [[ " ${pkgs[*]-} " == *" munge "* ]] || pkgs+=(munge)
  { [ -f /usr/include/munge.h ] && ls /usr/lib/*/libmunge.so >/dev/null 2>&1; } || pkgs+=(libmunge-dev)
  command -v gcc >/dev/null || pkgs+=(gcc)
  [ -f /usr/include/stdio.h ] || pkgs+=(libc6-dev)
  echo "${pkgs[*]-}"
}

need=$(missing)
[ -z "$need" ] && exit 0

say() { echo "bench-munge: $*" >&2; }
if [ "$(id -u)" != 0 ]; then
  say "missing Debian packages: $need; install them as root (apt-get install $need)"
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  say "missing Debian packages: $need, and there is no apt-get here to install them"
  exit 1
fi

log=$(mktemp "${TMPDIR:-/tmp}/momgate-munge-apt.XXXXXX")
policy_added=""
cleanup() {
  if [ -n "$policy_added" ]; then rm -f /usr/sbin/policy-rc.d; fi
  rm -f "$log"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  policy_added=1
fi

say "installing $need with apt-get"
# shellcheck disable=SC2086 # $need is a list of package names
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >"$log" 2>&1; then
  # A machine whose package lists were never fetched finds nothing.
  apt-get update -qq >>"$log" 2>&1 || true
  # shellcheck disable=SC2086
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >>"$log" 2>&1; then
    say "apt-get install $need failed: $(tail -n 2 "$log" | tr '\n' ' ')"
    exit 1
  fi
fi
still=$(missing)
if [ -n "$still" ]; then
  say "installed, but still missing: $still"
  exit 1
fi
