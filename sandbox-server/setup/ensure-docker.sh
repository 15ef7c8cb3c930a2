# shellcheck shell=bash
# A reachable Docker engine (installing and starting Debian's docker.io when we are root and none runs),
# plus the host tools some commands need: debootstrap (offline base image) and chromium (browser tests).

_debian_like() { [[ -r /etc/os-release ]] && grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release; }

_docker_fix_hint() {
  if _debian_like; then
    printf '%s\n' "Install and start Docker as root (or run 'sudo ./shipshape setup', which does it for you):" \
      "    sudo apt-get install -y docker.io && sudo systemctl start docker"
  else
    echo "Install Docker Engine (https://docs.docker.com/engine/install/) or Docker Desktop, start it, and check that 'docker info' works."
  fi
}

_start_dockerd() {
  if [[ "$(cat /proc/1/comm 2>/dev/null)" == systemd ]] && have systemctl; then
    note "systemctl start docker"
    systemctl start docker >"$SHIPSHAPE_LOGS/dockerd-start.log" 2>&1 ||
      fail "systemctl start docker failed. The end of its log:" "$(log_tail "$SHIPSHAPE_LOGS/dockerd-start.log")" \
        "See 'journalctl -u docker' for details, fix the cause, then run the same command again."
  else
    # No systemd (containers, CI runners): run dockerd detached so it outlives this script, and
    # without fd 9 (the set-up lock), which it would otherwise hold for as long as it runs.
    note "starting dockerd (log: /var/log/shipshape-dockerd.log)"
    setsid nohup dockerd >/var/log/shipshape-dockerd.log 2>&1 </dev/null 9>&- &
    disown || true
  fi
  local i
  for ((i = 0; i < 60; i++)); do
    docker info >/dev/null 2>&1 && return 0
    progress "waiting for the Docker engine"
    sleep 0.5
  done
  fail "dockerd was started but did not answer 'docker info' within 30 s. The end of its log:" \
    "$(log_tail /var/log/shipshape-dockerd.log)" \
    "Fix the cause above (look at /var/log/shipshape-dockerd.log), then run the same command again."
}

ensure_docker() {
  local err
  if ! have docker; then
    if is_root && _debian_like; then
      apt_install docker.io || fail "Installing docker.io with apt-get failed (see above)." "$(_docker_fix_hint)"
    else
      fail "The docker command was not found." "$(_docker_fix_hint)"
    fi
  fi
  if err=$(docker info 2>&1 >/dev/null); then
    note "Docker engine $(docker version -f '{{.Server.Version}}' 2>/dev/null) at ${DOCKER_HOST:-unix:///var/run/docker.sock}"
    return 0
  fi
  if [[ "$err" == *"permission denied"* ]]; then
    fail "The Docker engine is running but this user ($(id -un)) may not use it: permission denied on the Docker socket." \
      "Either add the user to the docker group and log in again:" "    sudo usermod -aG docker $(id -un) && newgrp docker" \
      "or run shipshape as root:" "    sudo ./shipshape ${SHIPSHAPE_COMMAND:-setup}"
  fi
  if [[ -n "${DOCKER_HOST:-}" ]]; then
    fail "DOCKER_HOST is set to $DOCKER_HOST but no Docker engine answers there:" "    $err" \
      "Start that engine, or unset DOCKER_HOST to use the local one, then run the same command again."
  fi
  if ! is_root || ! _debian_like; then
    fail "No Docker engine is running and shipshape cannot start one as $(id -un):" "    $err" "$(_docker_fix_hint)"
  fi
  if ! have dockerd; then
    apt_install docker.io || fail "Installing docker.io with apt-get failed (see above)." "$(_docker_fix_hint)"
  fi
  _start_dockerd
  note "Docker engine $(docker version -f '{{.Server.Version}}' 2>/dev/null) started"
}

# Only needed when the Debian base image has to be bootstrapped from the apt mirror.
ensure_debootstrap() {
  have debootstrap && return 0
  if is_root && _debian_like; then
    apt_install debootstrap debian-archive-keyring && return 0
  fi
  fail "The Debian base image could not be pulled from Docker Hub, so it must be built with debootstrap," \
    "which is not installed (or shipshape is not root and cannot install it)." \
    "Install it and run the set-up once as root (debootstrap needs root; later runs do not):" \
    "    sudo apt-get install -y debootstrap debian-archive-keyring && sudo ./shipshape setup" \
    "Alternatively make the image available yourself, e.g.:" "    docker load -i debian-bookworm-slim.tar && docker tag debian:bookworm-slim $SHIPSHAPE_BASE_RAW"
}

# Only for './shipshape test': the browser tests drive Debian's chromium through playwright-core.
ensure_browser() {
  [[ "${SHIPSHAPE_NEED_BROWSER:-0}" == 1 ]] || return 0
  local b
  for b in "${SHIPSHAPE_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
    [[ -n "$b" && -x "$b" ]] && { note "browser: $b"; return 0; }
  done
  if is_root && _debian_like; then
    apt_install chromium && { note "browser: /usr/bin/chromium"; return 0; }
  fi
  fail "The browser tests need Chromium, which was not found at /usr/bin/chromium." \
    "Install it (or set SHIPSHAPE_CHROMIUM=/path/to/chromium), then run the same command again:" \
    "    sudo apt-get install -y --no-install-recommends chromium"
}

# Only for './shipshape test': the deployment tests drive the examples in docs/deploy with Debian's
# Caddy and nginx (started by the tests on loopback ports, never as services) and docker-compose;
# the scale-out tests initialise their own Postgres clusters in temporary directories.
ensure_proxies() {
  [[ "${SHIPSHAPE_NEED_BROWSER:-0}" == 1 ]] || return 0
  local missing=()
  have caddy || missing+=(caddy)
  have nginx || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
  have docker-compose || missing+=(docker-compose)
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql-15)
  if ((${#missing[@]} == 0)); then
    note "caddy $(caddy version 2>/dev/null | cut -d' ' -f1), $(/usr/sbin/nginx -v 2>&1 | cut -d' ' -f3), docker-compose $(docker-compose version --short 2>/dev/null)"
    return 0
  fi
  if is_root && _debian_like; then
    # No service may start: the tests run their own on loopback ports. policy-rc.d says so to the
    # packages' scripts where an init system runs (one already there is left as it is).
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e "$policy" ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1; fi
    local installed=0
    if apt_install "${missing[@]}"; then installed=1; fi
    ((made_policy)) && rm -f "$policy"
    ((installed)) && { note "installed ${missing[*]}"; return 0; }
  fi
  fail "The deployment and scale-out tests need Caddy, nginx, docker-compose and Postgres (${missing[*]} missing)." \
    "Install them, then run the same command again:" \
    "    sudo apt-get install -y --no-install-recommends caddy nginx-light docker-compose postgresql-15"
}
