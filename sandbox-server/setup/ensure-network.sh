# shellcheck shell=bash
# The sandbox network and its egress policy. Sandboxes and the registry mirror share one bridge
# (shipshape0); icc=false plus the rules in egress-policy.sh keep sandboxes from reaching each other,
# the host, private networks and cloud metadata, while the registry (fixed address) stays reachable.

SHIPSHAPE_NETWORK="${SHIPSHAPE_SANDBOX_NETWORK:-shipshape-sandboxes}" # the server's setting, same default
SHIPSHAPE_BRIDGE=shipshape0
SHIPSHAPE_SUBNET="${SHIPSHAPE_SUBNET:-10.213.0.0/16}"

_ip2int() { local a b c d; IFS=. read -r a b c d <<<"$1"; echo $(((a << 24) | (b << 16) | (c << 8) | d)); }
_int2ip() { echo "$(($1 >> 24 & 255)).$(($1 >> 16 & 255)).$(($1 >> 8 & 255)).$(($1 & 255))"; }

# From SHIPSHAPE_SUBNET: gateway .1, registry .2, and dynamic addresses only from the upper half,
# so a sandbox can never take the registry's address while it is stopped.
_plan_network() {
  local ip prefix base size
  [[ "$SHIPSHAPE_SUBNET" =~ ^([0-9]{1,3}(\.[0-9]{1,3}){3})/([0-9]{1,2})$ ]] ||
    fail "SHIPSHAPE_SUBNET=$SHIPSHAPE_SUBNET is not an IPv4 subnet like 10.213.0.0/16."
  ip=${BASH_REMATCH[1]} prefix=${BASH_REMATCH[3]}
  ((prefix >= 8 && prefix <= 26)) || fail "SHIPSHAPE_SUBNET=$SHIPSHAPE_SUBNET: use a prefix between /8 and /26 (default 10.213.0.0/16)."
  size=$((1 << (32 - prefix)))
  base=$(($(_ip2int "$ip") & ~(size - 1) & 0xffffffff))
  SHIPSHAPE_SUBNET="$(_int2ip "$base")/$prefix"
  SHIPSHAPE_GATEWAY=$(_int2ip $((base + 1)))
  SHIPSHAPE_REGISTRY_IP=$(_int2ip $((base + 2)))
  SHIPSHAPE_IP_RANGE="$(_int2ip $((base + size / 2)))/$((prefix + 1))"
  export SHIPSHAPE_REGISTRY_IP
}

_create_network() {
  docker network create --driver bridge \
    --subnet "$SHIPSHAPE_SUBNET" --gateway "$SHIPSHAPE_GATEWAY" --ip-range "$SHIPSHAPE_IP_RANGE" \
    --opt "com.docker.network.bridge.name=$SHIPSHAPE_BRIDGE" \
    --opt com.docker.network.bridge.enable_icc=false \
    --label org.shipshape.role=sandboxes \
    --label "org.shipshape.registry-ip=$SHIPSHAPE_REGISTRY_IP" \
    "$SHIPSHAPE_NETWORK" >"$SHIPSHAPE_LOGS/network.log" 2>&1 ||
    fail "Creating the Docker network $SHIPSHAPE_NETWORK ($SHIPSHAPE_SUBNET) failed:" "$(log_tail "$SHIPSHAPE_LOGS/network.log")" \
      "If the subnet overlaps another network, choose a free one:" "    SHIPSHAPE_SUBNET=10.214.0.0/16 ./shipshape setup"
}

ensure_network() {
  local have_cfg want_cfg others
  _plan_network
  want_cfg="$SHIPSHAPE_SUBNET $SHIPSHAPE_BRIDGE false $SHIPSHAPE_REGISTRY_IP"
  if have_cfg=$(docker network inspect -f '{{(index .IPAM.Config 0).Subnet}} {{index .Options "com.docker.network.bridge.name"}} {{index .Options "com.docker.network.bridge.enable_icc"}} {{index .Labels "org.shipshape.registry-ip"}}' \
    "$SHIPSHAPE_NETWORK" 2>/dev/null); then
    if [[ "$have_cfg" != "$want_cfg" ]]; then
      # Settings changed. Only safe to recreate when no sandbox is attached (the registry is ours to move).
      others=$(docker network inspect -f '{{range .Containers}}{{.Name}} {{end}}' "$SHIPSHAPE_NETWORK" | tr ' ' '\n' | grep -vx -e shipshape-registry -e '' || true)
      [[ -z "$others" ]] || fail "The network $SHIPSHAPE_NETWORK has other settings ($have_cfg) than wanted ($want_cfg)," \
        "and sandboxes are still attached: $others." \
        "Stop the server, remove them, then run the same command again:" "    docker rm -f $others"
      note "network settings changed ($have_cfg -> $want_cfg): recreating $SHIPSHAPE_NETWORK"
      docker rm -f shipshape-registry >/dev/null 2>&1 || true
      docker network rm "$SHIPSHAPE_NETWORK" >/dev/null
      _create_network
    else
      note "$SHIPSHAPE_NETWORK ($SHIPSHAPE_SUBNET, bridge $SHIPSHAPE_BRIDGE) exists"
    fi
  else
    _create_network
    note "created $SHIPSHAPE_NETWORK ($SHIPSHAPE_SUBNET, bridge $SHIPSHAPE_BRIDGE, inter-container traffic off)"
  fi
}

# The rules live in egress-policy.sh so the server can re-apply them at start (same command).
ensure_egress_policy() {
  local log="$SHIPSHAPE_LOGS/egress-policy.log"
  bash "$SHIPSHAPE_ROOT/sandbox-server/setup/egress-policy.sh" >"$log" 2>&1 ||
    fail "Applying the sandbox egress policy (firewall rules) failed:" "$(log_tail "$log")" \
      "The policy runs in a short-lived container with --network host and CAP_NET_ADMIN; check that the engine" \
      "allows that (rootless Docker does not), then run the same command again."
  note "$(grep 'egress policy applied' "$log" | tail -n 1)"
}
