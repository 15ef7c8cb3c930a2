#!/usr/bin/env bash
# Egress policy for shipshape sandboxes (IPv4; the sandbox network has no IPv6).
#
#   from the sandbox bridge (shipshape0)          verdict
#   -> the registry mirror, tcp/5000            accept (and its replies)
#   -> any other container on the bridge        drop   (no sandbox-to-sandbox traffic)
#   -> the host's DNS resolvers, port 53        allowed (Docker's embedded DNS forwards from the sandbox)
#   -> 169.254.0.0/16 (cloud metadata)          drop
#   -> 10/8, 172.16/12, 192.168/16, 100.64/10   drop   (LAN, other Docker networks, CGNAT)
#   -> this host itself (any address)           drop   (host services), except replies
#   -> anything else (the internet)             allowed (Docker's own rules: masquerade)
#
# Usage, on the Docker host (needs only access to the Docker API, not root):
#     bash sandbox-server/setup/egress-policy.sh
# which runs the rules in a short-lived privileged-network helper container, i.e.
#     docker run --rm --network host --cap-add NET_ADMIN --cap-add NET_RAW --entrypoint bash \
#       -e SHIPSHAPE_BRIDGE=shipshape0 -e SHIPSHAPE_REGISTRY_IP=10.213.0.2 -e SHIPSHAPE_DNS_ALLOW="..." \
#       shipshape/sandbox:latest -s -- --inside < sandbox-server/setup/egress-policy.sh
# Idempotent: the rules live in two chains (SHIPSHAPE-EGRESS, jumped to from DOCKER-USER, and
# SHIPSHAPE-INPUT, jumped to from INPUT) that are replaced atomically with iptables-restore.
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
    "$image" -c "$script" egress-policy.sh --inside </dev/null
}

inside_mode() {
  local br=${SHIPSHAPE_BRIDGE:?} reg=${SHIPSHAPE_REGISTRY_IP:-} ipt='' v ns cidr rules dns
  # Use the iptables flavour (nft or legacy) in which the host's Docker keeps its DOCKER-USER chain.
  for v in iptables-nft iptables-legacy; do
    if "$v" -w -n -L DOCKER-USER >/dev/null 2>&1 </dev/null; then ipt=$v; break; fi
  done
  [[ -n "$ipt" ]] || { echo "egress-policy: no DOCKER-USER chain found (is dockerd running with iptables enabled?)" >&2; exit 1; }
  # shellcheck disable=SC2046,SC2086 # word splitting wanted: space-separated address lists
  dns=$(printf '%s\n' ${SHIPSHAPE_DNS_ALLOW:-} $(_nameservers /etc/resolv.conf) | { grep -E '^[0-9.]+$' || true; } | sort -u | tr '\n' ' ')

  rules="*filter
:SHIPSHAPE-EGRESS - [0:0]
:SHIPSHAPE-INPUT - [0:0]
-A SHIPSHAPE-EGRESS -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
  [[ -n "$reg" ]] && rules+="
-A SHIPSHAPE-EGRESS -o $br -d $reg/32 -p tcp --dport 5000 -j ACCEPT"
  rules+="
-A SHIPSHAPE-EGRESS -o $br -j DROP"
  for ns in $dns; do
    rules+="
-A SHIPSHAPE-EGRESS -d $ns/32 -p udp --dport 53 -j RETURN
-A SHIPSHAPE-EGRESS -d $ns/32 -p tcp --dport 53 -j RETURN"
  done
  for cidr in ${SHIPSHAPE_EGRESS_ALLOW:-}; do
    rules+="
-A SHIPSHAPE-EGRESS -d $cidr -j RETURN"
  done
  for cidr in 169.254.0.0/16 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 100.64.0.0/10; do
    rules+="
-A SHIPSHAPE-EGRESS -d $cidr -j DROP"
  done
  rules+="
-A SHIPSHAPE-EGRESS -j RETURN
-A SHIPSHAPE-INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
  for ns in $dns; do # a resolver that is this host itself (dnsmasq on the LAN address)
    rules+="
-A SHIPSHAPE-INPUT -d $ns/32 -p udp --dport 53 -j ACCEPT
-A SHIPSHAPE-INPUT -d $ns/32 -p tcp --dport 53 -j ACCEPT"
  done
  rules+="
-A SHIPSHAPE-INPUT -j DROP
COMMIT"
  "$ipt-restore" -w --noflush <<<"$rules"

  # Jumps: exactly one per chain, first in DOCKER-USER / INPUT, for the current bridge name.
  _jump DOCKER-USER SHIPSHAPE-EGRESS
  _jump INPUT SHIPSHAPE-INPUT
  echo "egress policy applied ($ipt): $br -> registry ${reg:-none}:5000 allowed; other containers, host, private ranges, metadata dropped; dns ${dns:-none}"
}

_jump() {
  local from=$1 to=$2 rule words
  while read -r rule; do
    [[ "$rule" == "-A $from -i $br -j $to" ]] && continue
    read -r -a words <<<"${rule#-A }"
    "$ipt" -w -D "${words[@]}" </dev/null
  done < <("$ipt" -w -S "$from" </dev/null 2>/dev/null | grep -- "-j $to\$" || true)
  "$ipt" -w -C "$from" -i "$br" -j "$to" 2>/dev/null </dev/null || "$ipt" -w -I "$from" 1 -i "$br" -j "$to" </dev/null
}

main() {
  if [[ "${1:-}" == --inside ]]; then inside_mode; else host_mode; fi
}
main "$@"
