#!/bin/bash
# Two processes, one address: the registry on 127.0.0.1:5010 (inside this container only) and nginx
# on :5000 in front of it, which passes registry traffic through and serves the Python package index
# (nginx.conf). When either ends, the container ends, and its restart policy starts both again.
# Online mode: a pull-through cache of SHIPSHAPE_REGISTRY_UPSTREAM (e.g. https://registry-1.docker.io).
# Note: a proxying registry refuses pushes, so offline stand-ins are only seeded when this is unset.
set -euo pipefail
if [ -n "${SHIPSHAPE_REGISTRY_UPSTREAM:-}" ]; then
  export REGISTRY_PROXY_REMOTEURL="$SHIPSHAPE_REGISTRY_UPSTREAM"
fi
export REGISTRY_HTTP_ADDR=127.0.0.1:5010
/usr/bin/docker-registry serve /etc/docker/registry/config.yml &
registry=$!
/usr/sbin/nginx -c /etc/shipshape/mirror-nginx.conf -g 'daemon off;' &
front=$!
trap 'kill -TERM "$registry" "$front" 2>/dev/null || true' TERM INT
status=0
wait -n || status=$?
kill -TERM "$registry" "$front" 2>/dev/null || true
wait || true
exit "$status"
