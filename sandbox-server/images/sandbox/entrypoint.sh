#!/bin/sh
# Entrypoint of a shipshape sandbox: prepare what a nested dockerd needs, then become dockerd.
# The container runs WITHOUT --privileged (it fails on some hosts): all capabilities but SYS_RESOURCE,
# seccomp and apparmor unconfined, and a private cgroup namespace. See docs/operations.md.
set -eu

log() { echo "shipshape-sandbox: $*" >&2; }

# cgroup v1: Docker mounts the hierarchies read-only. A tmpfs with fresh mounts of the same hierarchies
# (rooted at this container's cgroup, thanks to --cgroupns private) gives the inner dockerd writable ones.
cgroups_v1() {
  mount -t tmpfs -o mode=755,nosuid,nodev,noexec cgroup /sys/fs/cgroup
  # /proc/self/cgroup lists the hierarchies as "id:controllers:path"; co-mounted ones (cpu,cpuacct) stay together.
  while IFS=: read -r _ ctrls _; do
    [ -n "$ctrls" ] || continue # the "0::/" line is the cgroup v2 part of a hybrid host
    case "$ctrls" in
      name=*) dir=${ctrls#name=} opts="none,$ctrls" ;;
      *) dir=$ctrls opts=$ctrls ;;
    esac
    mkdir -p "/sys/fs/cgroup/$dir"
    if ! mount -t cgroup -o "$opts" cgroup "/sys/fs/cgroup/$dir"; then
      log "cgroup hierarchy $ctrls is not available"
      rmdir "/sys/fs/cgroup/$dir"
      continue
    fi
    if [ "$dir" != "$ctrls" ] || [ "${ctrls#*,}" = "$ctrls" ]; then continue; fi
    # cpu,cpuacct -> also reachable as cpu and cpuacct, where dockerd looks for them.
    for c in $(echo "$ctrls" | tr , ' '); do ln -sfn "$ctrls" "/sys/fs/cgroup/$c"; done
  done </proc/self/cgroup
}

# cgroup v2 (Docker Desktop, recent distributions): make the namespace root writable, move ourselves
# into a leaf so controllers can be delegated to the inner containers (same dance as docker:dind).
cgroups_v2() {
  mount -o remount,rw /sys/fs/cgroup 2>/dev/null || log "could not remount /sys/fs/cgroup read-write"
  mkdir -p /sys/fs/cgroup/init
  xargs -rn1 </sys/fs/cgroup/cgroup.procs >/sys/fs/cgroup/init/cgroup.procs 2>/dev/null || :
  sed -e 's/ / +/g' -e 's/^/+/' </sys/fs/cgroup/cgroup.controllers >/sys/fs/cgroup/cgroup.subtree_control || log "could not enable cgroup v2 controllers"
}

# cgroup v1, first pass: move into a child cgroup "sandbox" of this container's cgroup in every
# hierarchy, then start again in a cgroup namespace rooted there (docs/security.md). The container's
# own cgroup keeps Docker's limits (memory, CPU, pids) and device whitelist, and nothing inside can
# see it: root in the sandbox can write the files of its namespace root, but that is a child, which
# can neither lift the limits above it nor be granted a device its parent does not allow.
nest_v1() {
  cgroups_v1
  for d in /sys/fs/cgroup/*; do
    if [ ! -d "$d" ] || [ -L "$d" ]; then continue; fi
    mkdir -p "$d/sandbox"
    if [ -f "$d/cpuset.cpus" ]; then # an empty cpuset takes no tasks: inherit the parent's
      cat "$d/cpuset.cpus" >"$d/sandbox/cpuset.cpus"
      cat "$d/cpuset.mems" >"$d/sandbox/cpuset.mems"
    fi
    echo $$ >"$d/sandbox/cgroup.procs"
  done
  for d in /sys/fs/cgroup/*; do
    if [ -d "$d" ] && [ ! -L "$d" ]; then umount "$d"; fi
  done
  umount /sys/fs/cgroup
}

if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
  cgroups_v2
elif [ "${SHIPSHAPE_CGROUP_NESTED:-}" != 1 ]; then
  nest_v1
  SHIPSHAPE_CGROUP_NESTED=1 exec unshare --cgroup "$0" "$@"
else
  unset SHIPSHAPE_CGROUP_NESTED
  cgroups_v1
fi

# DNS for inner containers. This container's resolver is Docker's embedded DNS (127.0.0.11), which
# exists only in this network namespace, so inner containers would fall back to 8.8.8.8 (unreachable
# offline). We create docker0 ourselves with the daemon's "bip" address and run a forwarder on it;
# daemon.json points inner containers ("dns") at that address.
bip=$(jq -r '.bip // empty' /etc/docker/daemon.json)
# A fresh container network namespace has no docker0. If there is one with another address, we share
# someone else's namespace (--network host?): a nested dockerd there would rewire the host's Docker.
if ip link show docker0 >/dev/null 2>&1 && ! ip -4 addr show docker0 | grep -q "inet $bip "; then
  log "refusing to start: this network namespace already has a docker0 bridge (started with --network host?)."
  log "A sandbox needs its own network namespace; to run a one-off command, use --entrypoint."
  exit 1
fi
if [ -n "$bip" ] && ! ip link show docker0 >/dev/null 2>&1; then
  ip link add docker0 type bridge
  ip addr add "$bip" dev docker0
  ip link set docker0 up
fi
if [ -n "$bip" ] && [ "$(sed -n 's/^nameserver //p' /etc/resolv.conf | head -n 1)" = 127.0.0.11 ]; then
  dnsmasq --no-resolv --no-hosts --server=127.0.0.11 --listen-address="${bip%/*}" --bind-interfaces \
    --user=nobody --group=nogroup --pid-file=/run/shipshape-dnsmasq.pid --cache-size=1000 ||
    log "DNS forwarder did not start; inner containers may not resolve names"
elif [ -n "$bip" ]; then
  # Not on a user-defined network (e.g. the default bridge): let dnsmasq use this container's resolv.conf.
  dnsmasq --no-hosts --listen-address="${bip%/*}" --bind-interfaces \
    --user=nobody --group=nogroup --pid-file=/run/shipshape-dnsmasq.pid --cache-size=1000 ||
    log "DNS forwarder did not start; inner containers may not resolve names"
fi

# A stale pid file from a previous run of this container would stop dockerd from starting.
rm -f /var/run/docker.pid /var/run/docker/containerd/containerd.pid

# Listening sockets come from /etc/docker/daemon.json ("hosts": unix socket only, never TCP).
exec dockerd "$@" >>/var/log/dockerd.log 2>&1
