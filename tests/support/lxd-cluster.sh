#!/usr/bin/env bash
# A real two-member LXD cluster on this one machine, for the scale-out tests and bench
# (tests/integration/lxd-cluster.test.ts, bench/workshop-load.ts --cluster). Idempotent: a second
# `up` reuses the running cluster; `stop-member m2` simulates that machine dying; `start-member m2`
# brings it back (it rejoins by itself); `down` removes everything it made.
#
# Why two daemons on the host and not LXD nested in an LXD container: a sandbox is already an
# unprivileged container running dockerd with hand-mounted cgroup v1 hierarchies; nesting LXD in
# LXD would put that inside a second user namespace and a second cgroup-v1 workaround, with a second
# copy of every image, on a 2-core machine. Two daemons, each with its own LXD_DIR (database,
# certificates, storage pool on its own loop file, containers), talking HTTPS to each other on their
# own loopback addresses, are a real cluster (dqlite, join token, LXD's own placement and
# forwarding) that costs one daemon each. What they share is the kernel and one L2 network: both
# members attach sandboxes to the host LXD's bridge (shipshape-lx0) as an unmanaged parent, so the
# isolated tier's firewall, DNS and registry route apply unchanged. On two real machines each member
# has that bridge itself (see docs/scale-out.md).
#
# Never touches the host's own LXD (/var/lib/lxd) but to read its sandbox image.
#
#   tests/support/lxd-cluster.sh up | status | stop-member <m> | start-member <m> | down
set -euo pipefail
# `lxd init`, `waitready` and `shutdown` follow LXD_SOCKET before LXD_DIR, and ./shipshape exports
# LXD_SOCKET for the host's own LXD: left set, "bootstrap m1" made the HOST's daemon a cluster
# member. Every command below names its member's directory and socket itself.
unset LXD_SOCKET LXD_DIR

ROOT=${SHIPSHAPE_LXD_CLUSTER_DIR:-/var/lib/shipshape-lxd-cluster}
HOST_SOCKET=${SHIPSHAPE_LXD_SOCKET:-/var/lib/lxd/unix.socket}
POOL=${SHIPSHAPE_LXD_POOL:-shipshape}
POOL_SIZE=${SHIPSHAPE_LXD_CLUSTER_POOL_SIZE:-12GiB}
BRIDGE=${SHIPSHAPE_LXD_NETWORK:-shipshape-lx0}
MEMBERS=(m1 m2)
declare -A ADDRESS=([m1]=127.0.0.2 [m2]=127.0.0.3)

say() { printf 'lxd-cluster: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
dir() { echo "$ROOT/$1"; }
lxcm() { local m=$1; shift; LXD_DIR=$(dir "$m") LXD_SOCKET=$(dir "$m")/unix.socket lxc "$@" </dev/null; }
answers() { [[ -S "$(dir "$1")/unix.socket" ]] && lxcm "$1" info >/dev/null 2>&1; }
daemon_pid() { [[ -f "$(dir "$1")/daemon.pid" ]] && cat "$(dir "$1")/daemon.pid"; }

start_daemon() {
  local m=$1 d
  d=$(dir "$m")
  answers "$m" && return 0
  mkdir -p "$d"
  chmod 0711 "$d"
  # Detached (setsid), so it outlives this script; the pid file lets stop-member and down end
  # exactly this daemon and nothing else.
  LXD_DIR=$d setsid nohup lxd --group root --logfile "$d/lxd.log" >>"$d/lxd.out" 2>&1 </dev/null 9>&- &
  echo $! >"$d/daemon.pid"
  LXD_DIR=$d LXD_SOCKET=$d/unix.socket lxd waitready --timeout 60 </dev/null || die "lxd $m did not answer in 60 s: $(tail -5 "$d/lxd.log")"
}

member_of_cluster() { local l; l=$(lxcm "$1" cluster list --format csv 2>/dev/null) || return 1; [[ $'\n'"$l" == *$'\n'"$1,"* ]]; }

image_alias() {
  [[ -n "${SHIPSHAPE_LXD_IMAGE:-}" ]] && { echo "$SHIPSHAPE_LXD_IMAGE"; return; }
  local f
  f="$(cd "$(dirname "$0")/../.." && pwd)/.data/lxd-image"
  [[ -f "$f" ]] || die "no sandbox image: run SHIPSHAPE_TIER=isolated ./shipshape setup first"
  cat "$f"
}

up() {
  command -v lxd >/dev/null || die "LXD is not installed: run SHIPSHAPE_TIER=isolated ./shipshape setup first"
  mkdir -p "$ROOT"
  # Loopback addresses of our own: 127.0.0.0/8 routes to lo, but LXD binds an exact address.
  local lo
  lo=$(ip -4 addr show dev lo)
  for m in "${MEMBERS[@]}"; do
    [[ "$lo" == *"inet ${ADDRESS[$m]}/"* ]] || ip addr add "${ADDRESS[$m]}/32" dev lo
  done

  start_daemon m1
  if ! member_of_cluster m1; then
    say "bootstrapping the cluster on m1 (${ADDRESS[m1]}:8443)"
    LXD_DIR=$(dir m1) LXD_SOCKET=$(dir m1)/unix.socket lxd init --preseed <<EOF >/dev/null || die "lxd init on m1 failed"
config:
  core.https_address: ${ADDRESS[m1]}:8443
  images.auto_update_interval: "0"
cluster:
  server_name: m1
  enabled: true
storage_pools:
- name: $POOL
  driver: btrfs
  config:
    size: $POOL_SIZE
EOF
  fi
  # A member that stops answering is marked offline after 11 s (the least LXD takes; default 20 s),
  # so its learners hear it soon. LXD closes the connection on this change although it applies it.
  [[ "$(lxcm m1 config get cluster.offline_threshold)" == 11 ]] || lxcm m1 config set cluster.offline_threshold 11 >/dev/null 2>&1 || true
  # The test runner's client certificate, trusted by the cluster (HTTPS clients; the Unix socket needs none).
  if [[ ! -f "$ROOT/client.crt" ]]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:secp384r1 -nodes -days 3650 \
      -subj "/CN=shipshape-server" -keyout "$ROOT/client.key" -out "$ROOT/client.crt" 2>/dev/null
    chmod 0600 "$ROOT/client.key"
  fi
  [[ "$(lxcm m1 config trust list --format csv)" == *shipshape-server* ]] ||
    lxcm m1 config trust add "$ROOT/client.crt" --name shipshape-server >/dev/null
  cp "$(dir m1)/cluster.crt" "$ROOT/cluster.crt"

  start_daemon m2
  if ! member_of_cluster m2; then
    say "joining m2 (${ADDRESS[m2]}:8443) with a join token"
    local token
    lxcm m1 cluster remove --force --yes m2 >/dev/null 2>&1 || true
    lxcm m1 cluster revoke-token m2 >/dev/null 2>&1 || true
    token=$(lxcm m1 cluster add m2 --quiet)
    LXD_DIR=$(dir m2) LXD_SOCKET=$(dir m2)/unix.socket lxd init --preseed <<EOF >/dev/null || die "m2 could not join: $(tail -5 "$(dir m2)/lxd.log")"
cluster:
  enabled: true
  server_name: m2
  server_address: ${ADDRESS[m2]}:8443
  cluster_address: ${ADDRESS[m1]}:8443
  cluster_token: $token
  member_config:
  - entity: storage-pool
    name: $POOL
    key: size
    value: $POOL_SIZE
EOF
  fi

  # Both members attach sandboxes to the host LXD's bridge as an unmanaged parent (see the top):
  # the runtime reads the registry mirror and a range of addresses of their own from these keys.
  # 10.214.64.0/18 lies between the bridge's DHCP range (.0.10-.0.250) and the host LXD's sandboxes
  # (the upper half), so the host's and the cluster's sandboxes never pick the same address.
  local net gw registry
  net=$(LXD_SOCKET=$HOST_SOCKET lxc network get "$BRIDGE" ipv4.address </dev/null) || die "the host LXD has no bridge $BRIDGE: run SHIPSHAPE_TIER=isolated ./shipshape setup first"
  [[ "$net" == */16 ]] || die "the host bridge $BRIDGE is $net; this script expects a /16"
  gw=${net%/*}
  registry=$(LXD_SOCKET=$HOST_SOCKET lxc network get "$BRIDGE" user.shipshape.registry-ip </dev/null)
  lxcm m1 config set user.shipshape.sandbox-range "${gw%.*.*}.64.0/18"
  lxcm m1 config set user.shipshape.registry-ip "$registry"

  local alias
  alias=$(image_alias)
  if ! lxcm m1 image info "$alias" >/dev/null 2>&1; then
    say "copying the sandbox image $alias from the host's LXD"
    local work
    work=$(mktemp -d "$ROOT/image.XXXXXX")
    LXD_SOCKET=$HOST_SOCKET lxc image export "$alias" "$work/img" </dev/null >/dev/null
    lxcm m1 image import "$work"/img* --alias "$alias" >/dev/null || { rm -rf "$work"; die "image import failed"; }
    rm -rf "$work"
  fi
  status
}

status() {
  for m in "${MEMBERS[@]}"; do printf '%s socket %s\n' "$m" "$(dir "$m")/unix.socket"; done
  lxcm m1 cluster list --format csv -c nus 2>/dev/null || lxcm m1 cluster list --format csv
}

# A machine that dies: its daemon and every process of its containers, killed at once.
stop_member() {
  local m=$1 pid d
  d=$(dir "$m")
  pid=$(daemon_pid "$m" || true)
  [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null || true
  # liblxc's monitor of each container names the member's LXD_DIR on its command line.
  local monitors
  monitors=$(pgrep -f "\[lxc monitor\] $d/containers " || true)
  for name in $(ls "$d/containers" 2>/dev/null); do
    for f in /sys/fs/cgroup/pids/lxc.payload."$name"/cgroup.procs /sys/fs/cgroup/lxc.payload."$name"/cgroup.procs; do
      [[ -f "$f" ]] && xargs -r kill -KILL <"$f" 2>/dev/null || true
    done
    # Nested cgroups (the inner dockerd's containers) hold processes of their own.
    find /sys/fs/cgroup/pids/lxc.payload."$name" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
  done
  [[ -n "$monitors" ]] && kill -KILL $monitors 2>/dev/null || true
  say "$m stopped (daemon and containers killed)"
}

down() {
  for m in m2 m1; do
    answers "$m" && LXD_DIR=$(dir "$m") LXD_SOCKET=$(dir "$m")/unix.socket timeout 60 lxd shutdown </dev/null >/dev/null 2>&1 || true
    stop_member "$m" >/dev/null 2>&1 || true
  done
  for m in "${MEMBERS[@]}"; do
    for mnt in $(awk -v p="$(dir "$m")" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r); do umount -l "$mnt" 2>/dev/null || true; done
    for loop in $(losetup -j "$(dir "$m")/disks/$POOL.img" -O NAME --noheadings 2>/dev/null); do losetup -d "$loop" 2>/dev/null || true; done
    ip addr del "${ADDRESS[$m]}/32" dev lo 2>/dev/null || true
  done
  rm -rf "$ROOT"
  say "removed"
}

case "${1:-}" in
  up) up ;;
  status) status ;;
  stop-member) stop_member "${2:?which member}" ;;
  start-member) start_daemon "${2:?which member}"; status ;;
  down) down ;;
  *) sed -n '2,5s/^# \{0,1\}//p' "$0"; exit 2 ;;
esac
