# Port pins: each sandbox's bridge port accepts only frames from the sandbox's own MAC and, for
# IPv4 and ARP, its own IPv4 address; everything else from that port (IPv6, VLAN tags, other
# ethertypes) is dropped. The rules sit in the ebtables nat PREROUTING chain, which runs before the
# bridge learns a frame's source or forwards it, so a learner who claims another sandbox's MAC or
# IP (ARP included) neither poisons the bridge's forwarding table nor the host's ARP cache.
#
# Runs (docker exec) in the server's helper container (runtime/network-guard.ts), which has
# --network host --pid host and CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN, CAP_SYS_PTRACE:
#     bash -c "$script" port-pins [--verify-egress]
# SHIPSHAPE_PINS holds one line per running sandbox: "<id> <pid> <mac> <ipv4> <bridge>", where pid,
# mac and ip come from the engine (never from inside the sandbox). For each line it prints
#     ok <id> <port>        already pinned
#     pinned <id> <port>    pinned now
#     failed <id> <reason>
# and "pruned <port>" for the rules of ports that no longer exist (their sandbox is gone).
# With --verify-egress it first runs egress-policy.sh --verify (SHIPSHAPE_EGRESS_SCRIPT, with
# SHIPSHAPE_BRIDGE) and prints its lines, prefixed "egress ".
#
# The host-side port of a sandbox is found from the host's side only: its network namespace (by the
# engine's pid) gets a name, `ip netns list-id` gives the id the host knows it by, and the port is
# the veth on the bridge whose peer lives in that namespace (link-netnsid). Nothing the learner can
# change inside the sandbox (interface names, ifindex, iflink, its own sysfs) enters that answer.
set -uo pipefail

CHAIN=SHIPSHAPE-PORTS

# The veth on bridge $2 whose peer is in the network namespace of pid $1.
port_of() {
  local pid=$1 br=$2 name="pin$1" nsid ports
  ip netns attach "$name" "$pid" >/dev/null 2>&1 || { echo "cannot open the network namespace of pid $pid"; return 1; }
  nsid=$(ip netns list-id 2>/dev/null | sed -n "s/^nsid \([0-9]\+\) (iproute2 netns name: $name)\$/\1/p")
  ip netns del "$name" >/dev/null 2>&1
  [[ -n "$nsid" ]] || { echo "the host has no id for the namespace of pid $pid"; return 1; }
  ports=$(ip -o link show master "$br" 2>/dev/null | sed -n "s/^[0-9]\+: \([^@: ]\+\)@[^ ]*: .* link-netnsid $nsid\$/\1/p")
  if [[ $(wc -w <<<"$ports") -ne 1 ]]; then
    echo "expected one port on $br for pid $pid, found: ${ports:-none}"
    return 1
  fi
  echo "$ports"
}

# The rules of one port, in ebtables-save form (what `ebtables -t nat -L` prints after the name).
port_rules() {
  local mac=$1 ip=$2
  printf '%s\n' \
    "-s ! $mac -j DROP" \
    "-p ARP --arp-mac-src ! $mac -j DROP" \
    "-p ARP --arp-ip-src ! $ip -j DROP" \
    "-p ARP -j RETURN" \
    "-p IPv4 --ip-src ! $ip -j DROP" \
    "-p IPv4 -j RETURN" \
    "-j DROP"
}

# Set-up makes these too (egress-policy.sh); a flush may have taken them. Another server may be
# making them at this very moment: what counts is that they exist afterwards.
ensure_base() {
  ebtables -t nat -L "$CHAIN" >/dev/null 2>&1 || ebtables -t nat -N "$CHAIN" -P RETURN 2>/dev/null
  ebtables -t nat -L "$CHAIN" >/dev/null 2>&1 || return 1
  ebtables -t nat -L PREROUTING | grep -qxF -- "-j $CHAIN" || ebtables -t nat -I PREROUTING 1 -j "$CHAIN"
}

# Writes the port's chain in one transaction (flushed and refilled), then its jump.
install() {
  local port=$1 mac=$2 ip=$3 pc="SSP-$1" rules
  rules=$(port_rules "$mac" "$ip" | sed "s/^/-A $pc /")
  if ebtables -t nat -L "$pc" >/dev/null 2>&1; then
    ebtables-restore --noflush <<<"*nat
-F $pc
$rules
" || return 1
  else
    ebtables-restore --noflush <<<"*nat
:$pc RETURN
$rules
" || return 1
  fi
  ebtables -t nat -L "$CHAIN" | grep -qxF -- "-i $port -j $pc" || ebtables -t nat -A "$CHAIN" -i "$port" -j "$pc"
}

pinned_already() {
  local port=$1 mac=$2 ip=$3
  [[ "$(ebtables -t nat -L "SSP-$port" 2>/dev/null | grep -- '^-')" == "$(port_rules "$mac" "$ip")" ]] &&
    ebtables -t nat -L "$CHAIN" | grep -qxF -- "-i $port -j SSP-$port"
}

# Rules of ports that are gone: their jump and chain. Harmless to leave, but they pile up.
prune() {
  local pc port
  for pc in $(ebtables -t nat -L 2>/dev/null | sed -n 's/^Bridge chain: \(SSP-[^,]*\),.*/\1/p'); do
    port=${pc#SSP-}
    [[ -e "/sys/class/net/$port" ]] && continue
    ebtables -t nat -D "$CHAIN" -i "$port" -j "$pc" 2>/dev/null
    ebtables -t nat -F "$pc" 2>/dev/null && ebtables -t nat -X "$pc" 2>/dev/null && echo "pruned $port"
  done
}

main() {
  local id pid mac ip br port
  if [[ "${1:-}" == --verify-egress ]]; then
    bash -c "$SHIPSHAPE_EGRESS_SCRIPT" egress-policy.sh --inside --verify 2>&1 | sed 's/^/egress /'
  fi
  ensure_base || { echo "failed - cannot create the ebtables chain $CHAIN"; exit 1; }
  while read -r id pid mac ip br; do
    [[ -n "${id:-}" ]] || continue
    if ! port=$(port_of "$pid" "$br"); then
      echo "failed $id $port"
      continue
    fi
    if pinned_already "$port" "$mac" "$ip"; then
      echo "ok $id $port"
    elif install "$port" "$mac" "$ip"; then
      echo "pinned $id $port"
    else
      echo "failed $id could not write the rules of $port"
    fi
  done <<<"${SHIPSHAPE_PINS:-}"
  prune
}
main "$@"
