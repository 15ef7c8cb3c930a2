# shellcheck shell=bash
# The isolated tier: LXD installed, running and initialised (a bridge for sandboxes, a btrfs pool for
# their disks), the sandbox image imported into it, and the firewall rules that hold its sandboxes to
# the same egress policy as the classroom tier's (egress-policy.sh). Runs after the Docker steps: the
# LXD image is made from the Docker sandbox image, and the registry mirror lives on the Docker bridge.
#
#   from the LXD sandbox bridge (shipshape-lx0)    verdict
#   -> the registry mirror, tcp/5000             accept
#   -> another sandbox on the bridge             drop  (br_netfilter sends bridged frames through FORWARD)
#   -> the bridge's DNS (LXD's dnsmasq), port 53 accept; anything else to this host: drop
#   -> 169.254/16, 10/8, 172.16/12, 192.168/16, 100.64/10   drop
#   -> the internet                              accept (masqueraded by LXD's NAT rule)
#   IPv6 from or to the bridge                   drop  (the bridge has no IPv6; this is the backstop)
# Anti-spoofing is LXD's own: every NIC has a fixed address with security.mac_filtering and
# security.ipv4_filtering (lxd-instance-spec.ts).

SHIPSHAPE_LXD_SOCKET="${SHIPSHAPE_LXD_SOCKET:-/var/lib/lxd/unix.socket}"
SHIPSHAPE_LXD_NETWORK="${SHIPSHAPE_LXD_NETWORK:-shipshape-lx0}"
SHIPSHAPE_LXD_POOL="${SHIPSHAPE_LXD_POOL:-shipshape}"
SHIPSHAPE_LXD_POOL_SIZE="${SHIPSHAPE_LXD_POOL_SIZE:-30GiB}"
SHIPSHAPE_LXD_SUBNET="${SHIPSHAPE_LXD_SUBNET:-10.214.0.0/16}"

# Which tier ./shipshape sets up besides the Docker one: isolated (LXD required), classroom (Docker
# only), auto (LXD when this machine can run it: Linux, root, Debian or Ubuntu).
lxd_wanted() {
  # ./shipshape test proves both tiers: it sets LXD up wherever it can, whatever tier is chosen.
  # auto (the default): the isolated tier wherever LXD can be set up here, else the classroom one.
  local tier="${SHIPSHAPE_TIER:-auto}"
  [[ "${SHIPSHAPE_COMMAND:-}" == test && "$tier" == classroom ]] && tier=auto
  case "$tier" in
    isolated) return 0 ;;
    classroom) return 1 ;;
    auto) [[ "$(uname -s)" == Linux ]] && is_root && _debian_like ;;
    *) fail "SHIPSHAPE_TIER=$SHIPSHAPE_TIER is not a tier: use isolated (LXD system containers, for public sites)," \
      "classroom (plain Docker-in-Docker, for trusted classes) or auto (isolated wherever LXD can be set up)." ;;
  esac
}

_lxd_fix_hint() {
  if _debian_like; then
    printf '%s\n' "Run the set-up as root on Debian 12 or Ubuntu, which installs LXD for you:" \
      "    sudo SHIPSHAPE_TIER=isolated ./shipshape setup" \
      "or choose the classroom tier (plain Docker-in-Docker, for trusted learners only):" \
      "    SHIPSHAPE_TIER=classroom ./shipshape setup"
  else
    echo "The isolated tier needs LXD (or Incus) on Linux. Elsewhere (Docker Desktop on a laptop) use the classroom tier: SHIPSHAPE_TIER=classroom ./shipshape setup"
  fi
}

_lxc() { lxc "$@" </dev/null; }

_start_lxd() {
  if [[ "$(cat /proc/1/comm 2>/dev/null)" == systemd ]] && have systemctl && systemctl cat lxd.service >/dev/null 2>&1; then
    note "systemctl start lxd"
    systemctl start lxd >"$SHIPSHAPE_LOGS/lxd-start.log" 2>&1 ||
      fail "systemctl start lxd failed. The end of its log:" "$(log_tail "$SHIPSHAPE_LOGS/lxd-start.log")" \
        "See 'journalctl -u lxd' for details, fix the cause, then run the same command again."
  else
    # No systemd: detached, so it outlives this script, and without fd 9 (the set-up lock).
    note "starting lxd (log: /var/log/shipshape-lxd.log)"
    setsid nohup lxd --group root --logfile /var/log/shipshape-lxd.log >/dev/null 2>&1 </dev/null 9>&- &
    disown || true
  fi
  lxd waitready --timeout 30 >/dev/null 2>&1 </dev/null ||
    fail "lxd was started but did not answer within 30 s. The end of its log:" "$(log_tail /var/log/shipshape-lxd.log)" \
      "Fix the cause above, then run the same command again."
}

# The bridge and the pool, created by `lxd init --preseed` with only what is missing (a second run
# changes nothing; an existing bridge gets the settings the policy relies on).
_lxd_init() {
  local preseed='' gw prefix
  gw="${SHIPSHAPE_LXD_SUBNET%/*}" prefix="${SHIPSHAPE_LXD_SUBNET#*/}"
  gw="${gw%.*}.$((${gw##*.} + 1))"
  if ! _lxc network show "$SHIPSHAPE_LXD_NETWORK" >/dev/null 2>&1; then
    # ipv4.firewall false: LXD would otherwise insert ACCEPT rules for the bridge ahead of ours.
    # DHCP only for a small range nobody uses (sandboxes have fixed addresses in the upper half).
    preseed+="networks:
- name: $SHIPSHAPE_LXD_NETWORK
  type: bridge
  config:
    ipv4.address: $gw/$prefix
    ipv4.nat: \"true\"
    ipv4.firewall: \"false\"
    ipv4.dhcp.ranges: ${gw%.*}.10-${gw%.*}.250
    ipv6.address: none
    user.shipshape.registry-ip: \"${SHIPSHAPE_REGISTRY_IP:-}\"
"
  fi
  if ! _lxc storage show "$SHIPSHAPE_LXD_POOL" >/dev/null 2>&1; then
    # btrfs on a loop file: copy-on-write clones of the image (0.4 s, not 9 s) and real per-sandbox quotas.
    preseed+="storage_pools:
- name: $SHIPSHAPE_LXD_POOL
  driver: btrfs
  config:
    size: $SHIPSHAPE_LXD_POOL_SIZE
"
  fi
  if [[ -n "$preseed" ]]; then
    note "lxd init --preseed (bridge $SHIPSHAPE_LXD_NETWORK $gw/$prefix, btrfs pool $SHIPSHAPE_LXD_POOL $SHIPSHAPE_LXD_POOL_SIZE)"
    lxd init --preseed <<<"$preseed" >"$SHIPSHAPE_LOGS/lxd-init.log" 2>&1 ||
      fail "lxd init --preseed failed:" "$(log_tail "$SHIPSHAPE_LOGS/lxd-init.log")" \
        "If the subnet $SHIPSHAPE_LXD_SUBNET is in use, choose another:" "    SHIPSHAPE_LXD_SUBNET=10.215.0.0/16 ./shipshape setup"
  fi
  # Settings the isolation depends on, enforced on every run (someone may have edited the bridge).
  _lxc network set "$SHIPSHAPE_LXD_NETWORK" ipv6.address none
  _lxc network set "$SHIPSHAPE_LXD_NETWORK" ipv4.firewall false
  _lxc network set "$SHIPSHAPE_LXD_NETWORK" user.shipshape.registry-ip "${SHIPSHAPE_REGISTRY_IP:-}"
}

# The sandbox image's filesystem, plus /sbin/init for LXD, imported once per content (tagged by the
# Docker image's id and the init script's hash, like the Docker images are tagged by their sources).
_lxd_image() {
  local src=${SHIPSHAPE_SANDBOX_IMAGE:?} id hash alias work cid
  id=$(docker image inspect -f '{{.Id}}' "$src")
  hash=$(printf '%s\n' "$id" "$(cat "$SHIPSHAPE_ROOT/sandbox-server/images/lxd/init")" lxd-image-v1 | sha256 | cut -c1-12)
  alias="shipshape-sandbox-$hash"
  if _lxc image info "$alias" >/dev/null 2>&1; then
    note "LXD image $alias exists"
  else
    work=$(mktemp -d "$SHIPSHAPE_DATA/context.lxd.XXXXXX")
    cid=$(docker create --label org.shipshape.role=lxd-export "$src" true)
    progress "exporting $src"
    docker export "$cid" -o "$work/rootfs.tar" || { docker rm -f "$cid" >/dev/null; fail "docker export of $src failed (see above)."; }
    docker rm -f "$cid" >/dev/null
    mkdir -p "$work/add/sbin"
    install -m 0755 "$SHIPSHAPE_ROOT/sandbox-server/images/lxd/init" "$work/add/sbin/init"
    tar --append -f "$work/rootfs.tar" --owner=0 --group=0 -C "$work/add" sbin/init
    cat >"$work/metadata.yaml" <<EOF
architecture: $(uname -m)
creation_date: $(date +%s)
properties:
  description: shipshape sandbox ($src, $id)
  os: debian
  release: bookworm
EOF
    tar -cf "$work/meta.tar" -C "$work" metadata.yaml
    run_with_progress "$SHIPSHAPE_LOGS/lxd-image.log" spinner 0 lxc image import "$work/meta.tar" "$work/rootfs.tar" --alias "$alias" ||
      { rm -rf "$work"; fail "Importing the sandbox image into LXD failed:" "$(log_tail "$SHIPSHAPE_LOGS/lxd-image.log")"; }
    rm -rf "$work"
    note "imported $src into LXD as $alias"
  fi
  echo "$alias" >"$SHIPSHAPE_DATA/lxd-image"
}

# The iptables flavour (nft or legacy) in which Docker keeps DOCKER-USER: our rules must sit in the
# same FORWARD chain as Docker's, whose policy is DROP.
_lxd_firewall() {
  local br=$SHIPSHAPE_LXD_NETWORK reg=${SHIPSHAPE_REGISTRY_IP:-} ipt='' ip6t v cidr rules gw
  gw=$(_lxc network get "$br" ipv4.address)
  gw=${gw%/*}
  for v in iptables-nft iptables-legacy; do
    if "$v" -w -n -L DOCKER-USER >/dev/null 2>&1; then ipt=$v; break; fi
  done
  [[ -n "$ipt" ]] || fail "No DOCKER-USER chain was found in iptables, so the isolated tier's firewall rules have no place to go." \
    "Is the Docker engine running with its iptables rules on? Check 'docker info', then run the same command again."
  ip6t=${ipt/iptables/ip6tables}
  rules="*filter
:SHIPSHAPE-LXD-EGRESS - [0:0]
:SHIPSHAPE-LXD-INPUT - [0:0]
-A SHIPSHAPE-LXD-EGRESS -o $br -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A SHIPSHAPE-LXD-EGRESS -o $br -j DROP"
  [[ -n "$reg" ]] && rules+="
-A SHIPSHAPE-LXD-EGRESS -d $reg/32 -p tcp --dport 5000 -j ACCEPT"
  for cidr in 169.254.0.0/16 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 100.64.0.0/10; do
    rules+="
-A SHIPSHAPE-LXD-EGRESS -d $cidr -j DROP"
  done
  rules+="
-A SHIPSHAPE-LXD-EGRESS -j ACCEPT
-A SHIPSHAPE-LXD-INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A SHIPSHAPE-LXD-INPUT -d $gw/32 -p udp --dport 53 -j ACCEPT
-A SHIPSHAPE-LXD-INPUT -d $gw/32 -p tcp --dport 53 -j ACCEPT
-A SHIPSHAPE-LXD-INPUT -j DROP
COMMIT"
  "$ipt-restore" -w --noflush <<<"$rules"
  # One jump each, first in its chain. Traffic from the bridge is judged whole by our chain (it ends
  # in ACCEPT or DROP); traffic to it only when it is not a reply from the bridge's own peers.
  _lxd_jump "$ipt" DOCKER-USER -i "$br" -j SHIPSHAPE-LXD-EGRESS
  _lxd_jump "$ipt" DOCKER-USER -o "$br" -j SHIPSHAPE-LXD-EGRESS
  _lxd_jump "$ipt" INPUT -i "$br" -j SHIPSHAPE-LXD-INPUT
  _lxd_jump "$ip6t" FORWARD -i "$br" -j DROP
  _lxd_jump "$ip6t" FORWARD -o "$br" -j DROP
  _lxd_jump "$ip6t" INPUT -i "$br" -j DROP
  note "firewall ($ipt): $br -> registry ${reg:-none}:5000 and the internet allowed; host (but DNS), other sandboxes, private ranges, metadata, IPv6 dropped"
}

_lxd_jump() {
  local ipt=$1 chain=$2
  shift 2
  "$ipt" -w -C "$chain" "$@" 2>/dev/null || "$ipt" -w -I "$chain" 1 "$@"
}

ensure_lxd() {
  lxd_wanted || { note "skipped (SHIPSHAPE_TIER=${SHIPSHAPE_TIER:-auto})"; return 0; }
  if ! have lxd || ! have lxc; then
    if is_root && _debian_like; then
      apt_install lxd lxd-client dnsmasq-base btrfs-progs squashfs-tools xz-utils ||
        fail "Installing LXD with apt-get failed (see above)." "$(_lxd_fix_hint)"
    else
      fail "LXD is not installed, and shipshape cannot install it as $(id -un) here." "$(_lxd_fix_hint)"
    fi
  fi
  # lxd init fails without dnsmasq ("Failed to check dnsmasq version"), and the pool needs mkfs.btrfs.
  if ! have dnsmasq || ! have mkfs.btrfs; then
    is_root && _debian_like && apt_install dnsmasq-base btrfs-progs ||
      fail "LXD needs dnsmasq and btrfs-progs, which are missing." "$(_lxd_fix_hint)"
  fi
  export LXD_SOCKET=$SHIPSHAPE_LXD_SOCKET
  if ! _lxc info >/dev/null 2>&1; then
    is_root || fail "LXD is installed but not answering on $SHIPSHAPE_LXD_SOCKET, and $(id -un) cannot start it." "$(_lxd_fix_hint)"
    _start_lxd
  fi
  note "LXD $(lxd --version 2>/dev/null) at $SHIPSHAPE_LXD_SOCKET"
  _lxd_init
  _lxd_image
  _lxd_firewall
}
