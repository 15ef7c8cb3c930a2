#!/usr/bin/env bash
# Egress policy for shipshape sandboxes.
#
#   from the sandbox bridge (shipshape0)          verdict
#   -> the registry mirror, tcp/5000            accept (and its replies)
#   -> any other container on the bridge        drop   (no sandbox-to-sandbox traffic)
#   -> the host's DNS resolvers, port 53        allowed (Docker's embedded DNS forwards from the sandbox)
#   -> 169.254.0.0/16 (cloud metadata)          drop
#   -> 10/8, 172.16/12, 192.168/16, 100.64/10   drop   (LAN, other Docker networks, CGNAT)
#   -> this host itself (any address)           drop   (host services), except replies
#   -> anything else (the internet)             allowed (Docker's own rules: masquerade)
#   IPv6 to this host or through it             drop   (ip6tables; a learner can turn IPv6 on in a
#                                                        fresh procfs, and the bridge has a link-local
#                                                        address)
# The server pins each sandbox's own bridge port (ebtables) to its MAC and IPv4 address and drops
# everything else from it, IPv6 between sandboxes included (sandbox-server/src/runtime/port-pins.sh).
#
# Usage, on the Docker host (needs only access to the Docker API, not root):
#     bash sandbox-server/setup/egress-policy.sh            apply (idempotent)
#     bash sandbox-server/setup/egress-policy.sh --verify   exit 3 and name what is missing
# which runs the rules in a short-lived privileged-network helper container, i.e.
#     docker run --rm --network host --cap-add NET_ADMIN --cap-add NET_RAW --entrypoint bash \
#       -e SHIPSHAPE_BRIDGE=shipshape0 -e SHIPSHAPE_REGISTRY_IP=10.213.0.2 -e SHIPSHAPE_DNS_ALLOW="..." \
#       shipshape/sandbox:latest -s -- --inside < sandbox-server/setup/egress-policy.sh
# Idempotent: the rules live in chains (SHIPSHAPE-EGRESS, jumped to from DOCKER-USER; SHIPSHAPE-INPUT,
# from INPUT; SHIPSHAPE-V6, from ip6tables INPUT and FORWARD) that are replaced atomically with
# iptables-restore. A bridge other than shipshape0 (a test's own network) gets chains of its own,
# named SS-EGRESS-<bridge> and so on.
# Optional: SHIPSHAPE_EGRESS_ALLOW="10.1.2.3/32 ..." destinations to allow despite the private ranges
# (an HTTP proxy or an internal registry); SHIPSHAPE_DNS_ALLOW adds resolvers.
set -euo pipefail

_nameservers() { sed -n 's/^[[:space:]]*nameserver[[:space:]]\+\([0-9.]\+\)[[:space:]]*$/\1/p' "$@" 2>/dev/null | grep -v '^127\.' || true; }

host_mode() {
  local net=${SHIPSHAPE_SANDBOX_NETWORK:-shipshape-sandboxes} image=${SHIPSHAPE_POLICY_IMAGE:-shipshape/sandbox:latest} bridge reg dns script
  bridge=$(docker network inspect -f '{{index .Options "com.docker.network.bridge.name"}}' "$net" 2>/dev/null) || {
    echo "egress-policy: the Docker network $net does not exist; run ./shipshape setup first" >&2
    exit 1
  }
  reg=$(docker network inspect -f '{{index .Labels "org.shipshape.registry-ip"}}' "$net")
  # Docker's embedded DNS forwards queries to the daemon host's resolvers from inside the sandbox
  # network (systemd-resolved hosts: the upstream list), so those must stay reachable on port 53.
  dns=$(_nameservers /etc/resolv.conf /run/systemd/resolve/resolv.conf | sort -u | tr '\n' ' ')
  script=$(cat "${BASH_SOURCE[0]}")
  docker run --rm --network host --cap-add NET_ADMIN --cap-add NET_RAW --entrypoint bash \
    --label org.shipshape.role=egress-policy \
    -e "SHIPSHAPE_BRIDGE=${bridge:-shipshape0}" -e "SHIPSHAPE_REGISTRY_IP=$reg" \
    -e "SHIPSHAPE_DNS_ALLOW=$dns ${SHIPSHAPE_DNS_ALLOW:-}" -e "SHIPSHAPE_EGRESS_ALLOW=${SHIPSHAPE_EGRESS_ALLOW:-}" \
    "$image" -c "$script" egress-policy.sh --inside "$@" </dev/null
}

# Chain names for the bridge $br: the historical names for shipshape0, a suffixed set for any other
# bridge (iptables chain names stop at 28 characters, a bridge name at 15).
_names() {
  if [[ "$br" == shipshape0 ]]; then
    EG=SHIPSHAPE-EGRESS IN=SHIPSHAPE-INPUT V6=SHIPSHAPE-V6
  else
    EG=SS-EGRESS-$br IN=SS-INPUT-$br V6=SS-V6-$br
  fi
}

# The iptables flavour (nft or legacy) in which the host's Docker keeps its DOCKER-USER chain.
_flavour() {
  local v
  for v in iptables-nft iptables-legacy; do
    if "$v" -w -n -L DOCKER-USER >/dev/null 2>&1 </dev/null; then
      ipt=$v ip6t=${v/iptables/ip6tables}
      return 0
    fi
  done
  echo "egress-policy: no DOCKER-USER chain found (is dockerd running with iptables enabled?)" >&2
  exit 1
}

inside_mode() {
  local br=${SHIPSHAPE_BRIDGE:?} reg=${SHIPSHAPE_REGISTRY_IP:-} ipt='' ip6t='' ns cidr rules dns EG IN V6
  _names
  _flavour
  if [[ "${1:-}" == --verify ]]; then verify_mode; return; fi
  # shellcheck disable=SC2046,SC2086 # word splitting wanted: space-separated address lists
  dns=$(printf '%s\n' ${SHIPSHAPE_DNS_ALLOW:-} $(_nameservers /etc/resolv.conf) | { grep -E '^[0-9.]+$' || true; } | sort -u | tr '\n' ' ')

  rules="*filter
:$EG - [0:0]
:$IN - [0:0]
-A $EG -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
  [[ -n "$reg" ]] && rules+="
-A $EG -o $br -d $reg/32 -p tcp --dport 5000 -j ACCEPT"
  rules+="
-A $EG -o $br -j DROP"
  for ns in $dns; do
    rules+="
-A $EG -d $ns/32 -p udp --dport 53 -j RETURN
-A $EG -d $ns/32 -p tcp --dport 53 -j RETURN"
  done
  for cidr in ${SHIPSHAPE_EGRESS_ALLOW:-}; do
    rules+="
-A $EG -d $cidr -j RETURN"
  done
  for cidr in 169.254.0.0/16 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 100.64.0.0/10; do
    rules+="
-A $EG -d $cidr -j DROP"
  done
  rules+="
-A $EG -j RETURN
-A $IN -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
  for ns in $dns; do # a resolver that is this host itself (dnsmasq on the LAN address)
    rules+="
-A $IN -d $ns/32 -p udp --dport 53 -j ACCEPT
-A $IN -d $ns/32 -p tcp --dport 53 -j ACCEPT"
  done
  rules+="
-A $IN -j DROP
COMMIT"
  "$ipt-restore" -w --noflush <<<"$rules"
  # IPv6: nothing from the bridge reaches the host or leaves through it (the bridge keeps its
  # link-local address; a learner who re-enables IPv6 in the sandbox would otherwise reach
  # services on the host bound to ::).
  "$ip6t-restore" -w --noflush <<<"*filter
:$V6 - [0:0]
-A $V6 -j DROP
COMMIT"

  # The base of the per-sandbox port pins, which the server fills (sandbox-server/src/runtime/port-pins.sh).
  # Made here too, so that set-up stops now, saying why, on a kernel that cannot filter bridged frames.
  if ! ebtables -t nat -L SHIPSHAPE-PORTS >/dev/null 2>&1 && ! ebtables -t nat -N SHIPSHAPE-PORTS -P RETURN; then
    echo "egress-policy: this kernel cannot filter bridged frames (ebtables nat table, nf_tables bridge family)," \
      "so sandboxes could not be kept from taking each other's addresses" >&2
    exit 1
  fi
  ebtables -t nat -L PREROUTING | grep -qxF -- "-j SHIPSHAPE-PORTS" || ebtables -t nat -I PREROUTING 1 -j SHIPSHAPE-PORTS

  # Jumps: exactly one per chain, first in DOCKER-USER / INPUT, for the current bridge name.
  _jump "$ipt" DOCKER-USER "$EG"
  _jump "$ipt" INPUT "$IN"
  _jump "$ip6t" INPUT "$V6"
  _jump "$ip6t" FORWARD "$V6"
  echo "egress policy applied ($ipt): $br -> registry ${reg:-none}:5000 allowed; other containers, host, private ranges, metadata dropped; IPv6 dropped; dns ${dns:-none}"
}

_jump() {
  local ipt=$1 from=$2 to=$3 rule words
  while read -r rule; do
    [[ "$rule" == "-A $from -i $br -j $to" ]] && continue
    read -r -a words <<<"${rule#-A }"
    "$ipt" -w -D "${words[@]}" </dev/null
  done < <("$ipt" -w -S "$from" </dev/null 2>/dev/null | grep -- "-j $to\$" || true)
  # A rule in front of the jump that applies to every interface (an ACCEPT a firewall tool
  # inserted) would let the bridge's traffic past the policy: then the jump moves to the front.
  if [[ -n "$(_bypass "$ipt" "$from" "$to")" ]]; then "$ipt" -w -D "$from" -i "$br" -j "$to" 2>/dev/null </dev/null || true; fi
  "$ipt" -w -C "$from" -i "$br" -j "$to" 2>/dev/null </dev/null || "$ipt" -w -I "$from" 1 -i "$br" -j "$to" </dev/null
}

# Prints the first rule before the jump `-i $br -j $to` in chain $from that could decide for the
# bridge's packets: one neither limited to another interface nor a DROP. (A jump for another bridge's
# outgoing traffic, `-o other`, can only decide for packets headed there; that bridge's policy owns them.)
_bypass() {
  local ipt=$1 from=$2 to=$3 rule first=''
  while read -r rule; do
    if [[ "$rule" == "-A $from -i $br -j $to" ]]; then
      echo "$first"
      return 0
    fi
    [[ -z "$first" && "$rule" == "-A $from "* ]] || continue
    [[ "$rule" =~ \ -[io]\ ([^ !]+)\  && "${BASH_REMATCH[1]}" != "$br" ]] && continue
    [[ "$rule" == *" -j DROP" ]] && continue
    first=$rule
  done < <("$ipt" -w -S "$from" </dev/null 2>/dev/null)
}

# Structural check, no changes: every chain and jump in place and nothing in front of a jump that
# would let the bridge's traffic past it. Prints one line per problem, in words; exit 3 if any.
verify_mode() {
  local problems=() rule
  _has() { "$1" -w -S "$2" 2>/dev/null </dev/null | grep -qxF -- "$3"; }
  _has "$ipt" DOCKER-USER "-A DOCKER-USER -i $br -j $EG" ||
    problems+=("traffic from the sandbox bridge $br is not sent through the egress chain $EG (no jump in DOCKER-USER)")
  _has "$ipt" "$EG" "-A $EG -o $br -j DROP" ||
    problems+=("the egress chain $EG is missing or incomplete: sandboxes could reach each other")
  _has "$ipt" "$EG" "-A $EG -d 169.254.0.0/16 -j DROP" && _has "$ipt" "$EG" "-A $EG -d 10.0.0.0/8 -j DROP" ||
    problems+=("the egress chain $EG does not drop cloud metadata and private networks")
  _has "$ipt" INPUT "-A INPUT -i $br -j $IN" ||
    problems+=("traffic from $br to this host is not filtered (no jump to $IN in INPUT)")
  _has "$ipt" "$IN" "-A $IN -j DROP" ||
    problems+=("the host chain $IN is missing or incomplete: sandboxes could reach services on the host")
  rule=$(_bypass "$ipt" DOCKER-USER "$EG")
  [[ -z "$rule" ]] || problems+=("a rule in DOCKER-USER comes before the egress jump and applies to $br too: $rule")
  rule=$(_bypass "$ipt" INPUT "$IN")
  [[ -z "$rule" ]] || problems+=("a rule in INPUT comes before the host jump and applies to $br too: $rule")
  _has "$ip6t" INPUT "-A INPUT -i $br -j $V6" && _has "$ip6t" FORWARD "-A FORWARD -i $br -j $V6" &&
    _has "$ip6t" "$V6" "-A $V6 -j DROP" ||
    problems+=("IPv6 from $br is not dropped by ip6tables ($V6)")
  if ((${#problems[@]})); then
    printf 'problem: %s\n' "${problems[@]}"
    exit 3
  fi
  echo "egress policy verified ($ipt): $br"
}

main() {
  if [[ "${1:-}" == --inside ]]; then
    shift
    inside_mode "$@"
  else
    host_mode "$@"
  fi
}
main "$@"
