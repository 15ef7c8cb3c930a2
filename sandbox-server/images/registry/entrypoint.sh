#!/bin/sh
# Online mode: a pull-through cache of SHIPSHAPE_REGISTRY_UPSTREAM (e.g. https://registry-1.docker.io).
# Note: a proxying registry refuses pushes, so offline stand-ins are only seeded when this is unset.
set -eu
if [ -n "${SHIPSHAPE_REGISTRY_UPSTREAM:-}" ]; then
  export REGISTRY_PROXY_REMOTEURL="$SHIPSHAPE_REGISTRY_UPSTREAM"
fi
exec /usr/bin/docker-registry serve /etc/docker/registry/config.yml
