# shellcheck shell=bash
# Images: the Debian base, the sandbox image, the registry mirror (image + container) and the offline
# stand-ins seeded into that mirror. Every build is tagged by a hash of its sources, so an unchanged
# tree costs one `docker image inspect` per image on the next run.

SHIPSHAPE_BASE_IMAGE="${SHIPSHAPE_BASE_IMAGE:-shipshape/debian-base:bookworm}"
SHIPSHAPE_BASE_RAW="${SHIPSHAPE_BASE_IMAGE}-raw"
SHIPSHAPE_EXTRA_CA_CERTS="${SHIPSHAPE_EXTRA_CA_CERTS:-/usr/local/share/ca-certificates}"
SHIPSHAPE_IMAGES_DIR="$SHIPSHAPE_ROOT/sandbox-server/images"
SHIPSHAPE_REGISTRY_HOST_PORT="${SHIPSHAPE_REGISTRY_HOST_PORT:-5001}"
SHIPSHAPE_REGISTRY_UPSTREAM="${SHIPSHAPE_REGISTRY_UPSTREAM:-}"
SHIPSHAPE_PULL_TIMEOUT="${SHIPSHAPE_PULL_TIMEOUT:-45}"
SHIPSHAPE_DEBIAN_SUITE=bookworm

# The legacy builder: it sees local images (our base) with any Docker client, and prints "Step N/M".
export DOCKER_BUILDKIT=0

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
image_id() { docker image inspect -f '{{.Id}}' "$1"; }

# build_image LABEL DIR TAG HASH [extra docker build args]: legacy build with progress; fail paragraph on error.
# RUN steps use the host's network: our Dockerfiles only fetch from the Debian mirror, and the build
# then works even where the default bridge is missing or disabled (dockerd --bridge=none).
build_image() {
  local what=$1 dir=$2 tag=$3 hash=$4 log
  shift 4
  log="$SHIPSHAPE_LOGS/build-${what//[^a-zA-Z0-9_.-]/_}.log"
  run_with_progress "$log" docker-build 0 docker build --network host --build-arg "BASE=$SHIPSHAPE_BASE_IMAGE" \
    --label "org.shipshape.source-hash=$hash" "$@" -t "$tag" "$dir" ||
    fail "Building the $what image failed. The end of the build log ($log):" "$(log_tail "$log" 20)" \
      "If a package download failed, check that the Debian mirror in /etc/apt/sources.list(.d) is reachable" \
      "from containers, then run the same command again:" "    docker run --rm $SHIPSHAPE_BASE_IMAGE apt-get update"
}

# ---------------------------------------------------------------------------------------------------
# (a) Base image: the real debian:bookworm-slim when Docker Hub answers, else debootstrap from the
#     host's own Debian mirror. The mirror is read from the host's apt sources at run time.

# Print "URI SUITE" for every enabled deb source of the host (one-line and deb822 formats).
_host_apt_sources() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r "$f" ]] || continue
    sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" && NF >= 3 { print $2, $3 }'
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -r "$f" ]] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
      {
        types = ""; uris = ""; suites = ""; enabled = "yes"
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^[ \t]*#/ || index($i, ":") == 0) continue
          key = tolower(substr($i, 1, index($i, ":") - 1)); val = substr($i, index($i, ":") + 1)
          if (key == "types") types = val; else if (key == "uris") uris = val
          else if (key == "suites") suites = val; else if (key == "enabled") enabled = tolower(val)
        }
        if (types !~ /(^|[ \t])deb([ \t]|$)/ || enabled ~ /no/) next
        nu = split(uris, u, /[ \t]+/); ns = split(suites, s, /[ \t]+/)
        for (a = 1; a <= nu; a++) for (b = 1; b <= ns; b++) if (u[a] != "" && s[b] != "") print u[a], s[b]
      }' "$f"
  done
}

# Sets DEBIAN_MIRROR and DEBIAN_SECURITY_MIRROR (may be empty) from overrides or the host's sources.
_find_debian_mirrors() {
  local codenames='^(buster|bullseye|bookworm|trixie|forky|duke|sid|oldstable|stable|testing|unstable)' uri suite
  DEBIAN_MIRROR="${SHIPSHAPE_DEBIAN_MIRROR:-}" DEBIAN_SECURITY_MIRROR="${SHIPSHAPE_DEBIAN_SECURITY_MIRROR:-}"
  while read -r uri suite; do
    [[ "$uri" =~ ^https?:// && "$suite" =~ $codenames ]] || continue
    if [[ "$suite" == *-security ]]; then
      : "${DEBIAN_SECURITY_MIRROR:=${uri%/}}"
    elif [[ "$suite" != */* && "$uri" != *security* ]]; then
      : "${DEBIAN_MIRROR:=${uri%/}}"
    fi
  done < <(_host_apt_sources)
  if [[ -z "$DEBIAN_MIRROR" ]]; then
    DEBIAN_MIRROR=http://deb.debian.org/debian
    : "${DEBIAN_SECURITY_MIRROR:=http://deb.debian.org/debian-security}"
    warn "no Debian mirror found in the host's apt sources; using $DEBIAN_MIRROR"
  fi
}

_bootstrap_base() {
  local work log="$SHIPSHAPE_LOGS/debootstrap.log" r
  ensure_debootstrap
  is_root || fail "Building the Debian base image offline needs debootstrap, which needs root." \
    "Run the set-up once as root (later runs reuse the image and do not need root):" "    sudo ./shipshape setup" \
    "or provide the image yourself:" "    docker pull debian:bookworm-slim && docker tag debian:bookworm-slim $SHIPSHAPE_BASE_RAW"
  _find_debian_mirrors
  note "debootstrap --variant=minbase $SHIPSHAPE_DEBIAN_SUITE from $DEBIAN_MIRROR"
  # Leftovers of an interrupted run (never cross into a mount that debootstrap left behind).
  rm -rf --one-file-system "$SHIPSHAPE_DATA"/debootstrap.* 2>/dev/null || true
  work=$(mktemp -d "$SHIPSHAPE_DATA/debootstrap.XXXXXX")
  r="$work/rootfs"
  # ~460 "I: Retrieving/Validating/Extracting/Unpacking/Configuring" lines for minbase + ca-certificates.
  run_with_progress "$log" debootstrap 460 debootstrap --variant=minbase --include=ca-certificates \
    --components=main "$SHIPSHAPE_DEBIAN_SUITE" "$r" "$DEBIAN_MIRROR" ||
    fail "debootstrap could not build a Debian $SHIPSHAPE_DEBIAN_SUITE tree from $DEBIAN_MIRROR. The end of its log:" \
      "$(log_tail "$log")" \
      "Check that the mirror answers:" "    curl -I $DEBIAN_MIRROR/dists/$SHIPSHAPE_DEBIAN_SUITE/Release" \
      "or pick another one:" "    SHIPSHAPE_DEBIAN_MIRROR=http://deb.debian.org/debian ./shipshape setup"

  # apt inside derived images uses the same mirror as the host (the only one that may be reachable).
  rm -f "$r/etc/apt/sources.list"
  {
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$DEBIAN_MIRROR" "$SHIPSHAPE_DEBIAN_SUITE" "$SHIPSHAPE_DEBIAN_SUITE"
    if [[ -n "$DEBIAN_SECURITY_MIRROR" ]]; then
      printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$DEBIAN_SECURITY_MIRROR" "$SHIPSHAPE_DEBIAN_SUITE"
    fi
  } >"$r/etc/apt/sources.list.d/debian.sources"
  # The same slimming as the official debian:*-slim images: no docs, man pages, locales, apt caches.
  cat >"$r/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
  cat >"$r/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  printf 'Acquire::Languages "none";\n' >"$r/etc/apt/apt.conf.d/docker-no-languages"
  # Packages installed during `docker build` must not try to start their services.
  printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
  chmod 755 "$r/usr/sbin/policy-rc.d"
  printf 'Apt::AutoRemove::SuggestsImportant "false";\n' >"$r/etc/apt/apt.conf.d/docker-autoremove-suggests"
  find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  rm -rf "${r:?}"/usr/share/{man,info,groff,lintian,linda,locale}/* "$r"/var/cache/apt/archives/*.deb \
    "${r:?}"/var/cache/apt/*.bin "${r:?}"/var/lib/apt/lists/* "${r:?}"/var/log/* "${r:?}"/dev/* "${r:?}"/tmp/* 2>/dev/null || true
  : >"$r/etc/resolv.conf"

  note "importing the tree as $SHIPSHAPE_BASE_RAW"
  tar -C "$r" --numeric-owner --one-file-system -c . |
    docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["bash"]' \
      --change 'LABEL org.shipshape.offline-standin=true' \
      --change "LABEL org.shipshape.debian-mirror=$DEBIAN_MIRROR" \
      - "$SHIPSHAPE_BASE_RAW" >"$SHIPSHAPE_LOGS/import.log" 2>&1 ||
    fail "docker import of the bootstrapped Debian tree failed:" "$(log_tail "$SHIPSHAPE_LOGS/import.log")" \
      "Check free disk space (df -h /var/lib/docker), then run the same command again."
  rm -rf --one-file-system "$work"
}

_ensure_raw_base() {
  if image_exists "$SHIPSHAPE_BASE_RAW"; then
    if [[ "$(docker image inspect -f '{{index .Config.Labels "org.shipshape.offline-standin"}}' "$SHIPSHAPE_BASE_RAW")" == true ]]; then
      note "$SHIPSHAPE_BASE_RAW present (bootstrapped offline from a Debian mirror)"
    else
      note "$SHIPSHAPE_BASE_RAW present"
    fi
    return 0
  fi
  if [[ "${SHIPSHAPE_OFFLINE:-0}" != 1 ]]; then
    note "trying: docker pull debian:$SHIPSHAPE_DEBIAN_SUITE-slim (at most ${SHIPSHAPE_PULL_TIMEOUT}s)"
    if with_timeout "$SHIPSHAPE_PULL_TIMEOUT" docker pull -q "debian:$SHIPSHAPE_DEBIAN_SUITE-slim" >"$SHIPSHAPE_LOGS/pull-base.log" 2>&1; then
      docker tag "debian:$SHIPSHAPE_DEBIAN_SUITE-slim" "$SHIPSHAPE_BASE_RAW"
      note "pulled debian:$SHIPSHAPE_DEBIAN_SUITE-slim from Docker Hub"
      return 0
    fi
    note "Docker Hub is not reachable ($(tail -n 1 "$SHIPSHAPE_LOGS/pull-base.log" | cut -c1-80)); bootstrapping instead"
  fi
  _bootstrap_base
}

# The final base = raw base + ca-certificates + the host's local CAs. Rebuilt when either changes.
ensure_base_image() {
  local ctx src f n=0 hash
  _ensure_raw_base
  ctx=$(mktemp -d "$SHIPSHAPE_DATA/context.XXXXXX")
  cp "$SHIPSHAPE_IMAGES_DIR/base/Dockerfile" "$ctx/"
  mkdir "$ctx/extra-ca"
  if [[ "$SHIPSHAPE_EXTRA_CA_CERTS" != none ]]; then
    for src in $SHIPSHAPE_EXTRA_CA_CERTS; do
      [[ -e "$src" ]] || continue
      while IFS= read -r -d '' f; do
        grep -q 'BEGIN CERTIFICATE' "$f" || continue
        n=$((n + 1))
        cp "$f" "$ctx/extra-ca/$n-$(basename "${f%.*}").crt"
      done < <(find -L "$src" -type f \( -name '*.crt' -o -name '*.pem' \) -print0 | LC_ALL=C sort -z)
    done
  fi
  hash=$(hash_tree "$ctx" "$(image_id "$SHIPSHAPE_BASE_RAW")")
  if image_exists "$SHIPSHAPE_BASE_IMAGE" &&
    [[ "$(docker image inspect -f '{{index .Config.Labels "org.shipshape.source-hash"}}' "$SHIPSHAPE_BASE_IMAGE")" == "$hash" ]]; then
    note "$SHIPSHAPE_BASE_IMAGE is up to date ($n extra CA certificates from the host)"
  else
    note "finishing $SHIPSHAPE_BASE_IMAGE: ca-certificates + $n CA certificates from $SHIPSHAPE_EXTRA_CA_CERTS"
    build_image base "$ctx" "$SHIPSHAPE_BASE_IMAGE" "$hash" --build-arg "RAW=$SHIPSHAPE_BASE_RAW"
  fi
  rm -rf "$ctx"
}

# ---------------------------------------------------------------------------------------------------
# (b) The sandbox image, tagged by the hash of its folder plus the base image id.

ensure_sandbox_image() {
  local dir="$SHIPSHAPE_IMAGES_DIR/sandbox" hash tag
  hash=$(hash_tree "$dir" "$(image_id "$SHIPSHAPE_BASE_IMAGE")")
  tag="shipshape/sandbox:${hash:0:12}"
  if image_exists "$tag"; then
    note "$tag is up to date"
  else
    note "building $tag (docker.io, git, curl, ... from the Debian mirror)"
    build_image sandbox "$dir" "$tag" "$hash"
  fi
  docker tag "$tag" shipshape/sandbox:latest
  printf '%s\n' "$tag" >"$SHIPSHAPE_DATA/sandbox-image" # the server reads it unless SHIPSHAPE_SANDBOX_IMAGE is set
  if [[ -n "${SHIPSHAPE_SANDBOX_IMAGE:-}" && "$SHIPSHAPE_SANDBOX_IMAGE" != "$tag" ]]; then
    note "built $tag, but the server will use SHIPSHAPE_SANDBOX_IMAGE=$SHIPSHAPE_SANDBOX_IMAGE (set in the environment)"
  else
    export SHIPSHAPE_SANDBOX_IMAGE=$tag
  fi
}

# ---------------------------------------------------------------------------------------------------
# (c) The registry mirror: Debian's docker-registry, on the sandbox network as "shipshape-registry"
#     (that name is in the sandboxes' daemon.json) and on 127.0.0.1 for seeding from this host.

# The offline Python package index (sandbox-server/images/pypi): wheels repacked from Debian's
# python3-pandas, python3-numpy and their dependencies. The registry image below copies it and serves
# it on the mirror's own port, so it is rebuilt (and the mirror restarted) only when it changes.
ensure_pypi_index() {
  local dir="$SHIPSHAPE_IMAGES_DIR/pypi" hash
  hash=$(hash_tree "$dir" "$(image_id "$SHIPSHAPE_BASE_IMAGE")")
  SHIPSHAPE_PYPI_INDEX_IMAGE="shipshape/pypi-index:${hash:0:12}"
  if ! image_exists "$SHIPSHAPE_PYPI_INDEX_IMAGE"; then
    note "building $SHIPSHAPE_PYPI_INDEX_IMAGE (wheels from Debian's python3-pandas, python3-numpy, ...)"
    build_image pypi-index "$dir" "$SHIPSHAPE_PYPI_INDEX_IMAGE" "$hash"
  fi
}

ensure_registry() {
  local dir="$SHIPSHAPE_IMAGES_DIR/registry" hash tag config state current i
  ensure_pypi_index
  hash=$(hash_tree "$dir" "$(image_id "$SHIPSHAPE_BASE_IMAGE")" "$(image_id "$SHIPSHAPE_PYPI_INDEX_IMAGE")")
  tag="shipshape/registry:${hash:0:12}"
  if ! image_exists "$tag"; then
    note "building $tag"
    build_image registry "$dir" "$tag" "$hash" --build-arg "PYPI_INDEX=$SHIPSHAPE_PYPI_INDEX_IMAGE"
  fi
  docker tag "$tag" shipshape/registry:latest
  # Recreate the container (never its volume) when the image or its settings changed.
  config=$(printf '%s\n' "$(image_id "$tag")" "$SHIPSHAPE_REGISTRY_UPSTREAM" "$SHIPSHAPE_REGISTRY_HOST_PORT" \
    "$SHIPSHAPE_REGISTRY_IP" "${SHIPSHAPE_REGISTRY_UPSTREAM_USERNAME:-}" | sha256 | cut -c1-12)
  current=$(docker inspect -f '{{index .Config.Labels "org.shipshape.config"}} {{.State.Status}}' shipshape-registry 2>/dev/null || true)
  state=${current#* }
  if [[ -n "$current" && "${current%% *}" != "$config" ]]; then
    note "settings or image changed: recreating the shipshape-registry container (its data volume stays)"
    docker rm -f shipshape-registry >/dev/null
    current=''
  fi
  if [[ -z "$current" ]]; then
    local env=()
    [[ -n "$SHIPSHAPE_REGISTRY_UPSTREAM" ]] && env+=(-e "SHIPSHAPE_REGISTRY_UPSTREAM=$SHIPSHAPE_REGISTRY_UPSTREAM")
    [[ -n "${SHIPSHAPE_REGISTRY_UPSTREAM_USERNAME:-}" ]] && env+=(
      -e "REGISTRY_PROXY_USERNAME=$SHIPSHAPE_REGISTRY_UPSTREAM_USERNAME"
      -e "REGISTRY_PROXY_PASSWORD=${SHIPSHAPE_REGISTRY_UPSTREAM_PASSWORD:-}")
    docker run -d --name shipshape-registry --restart unless-stopped \
      --network "$SHIPSHAPE_NETWORK" --ip "$SHIPSHAPE_REGISTRY_IP" \
      -p "127.0.0.1:$SHIPSHAPE_REGISTRY_HOST_PORT:5000" \
      --mount type=volume,src=shipshape-registry-data,dst=/var/lib/docker-registry \
      --label org.shipshape.role=registry --label "org.shipshape.config=$config" \
      --memory 512m --pids-limit 256 \
      "${env[@]}" shipshape/registry:latest >"$SHIPSHAPE_LOGS/registry-run.log" 2>&1 ||
      fail "Starting the registry container failed:" "$(log_tail "$SHIPSHAPE_LOGS/registry-run.log")" \
        "If port $SHIPSHAPE_REGISTRY_HOST_PORT on 127.0.0.1 is taken, choose another:" "    SHIPSHAPE_REGISTRY_HOST_PORT=5002 ./shipshape setup"
  elif [[ "$state" != running ]]; then
    docker start shipshape-registry >/dev/null
  fi
  for ((i = 0; i < 60; i++)); do
    [[ "$(http_head "http://127.0.0.1:$SHIPSHAPE_REGISTRY_HOST_PORT/v2/" | head -n 1)" == 200 ]] && break
    progress "waiting for the registry to answer"
    sleep 0.25
  done
  ((i < 60)) || fail "The registry container runs but does not answer on 127.0.0.1:$SHIPSHAPE_REGISTRY_HOST_PORT:" \
    "$(docker logs --tail 15 shipshape-registry 2>&1 | sed 's/^/    | /')" "Look at 'docker logs shipshape-registry', then run the same command again."
  if [[ -n "$SHIPSHAPE_REGISTRY_UPSTREAM" ]]; then
    note "shipshape-registry ($SHIPSHAPE_REGISTRY_IP:5000) is a pull-through cache of $SHIPSHAPE_REGISTRY_UPSTREAM"
  else
    note "shipshape-registry ($SHIPSHAPE_REGISTRY_IP:5000, host 127.0.0.1:$SHIPSHAPE_REGISTRY_HOST_PORT) serves the offline stand-ins, and Python packages at /simple/"
  fi
}

# http_head URL [Accept]: prints the status code, then the Docker-Content-Digest header (if any).
http_head() {
  local accept=${2:-*/*}
  if have curl; then
    curl -s -I --max-time 5 -H "Accept: $accept" "$1" 2>/dev/null | tr -d '\r' |
      awk 'NR == 1 { code = $2 } tolower($1) == "docker-content-digest:" { d = $2 } END { print (code ? code : "000"); print d }'
  else
    node -e 'fetch(process.argv[1], { method: "HEAD", headers: { accept: process.argv[2] }, signal: AbortSignal.timeout(5000) })
      .then(r => console.log(r.status + "\n" + (r.headers.get("docker-content-digest") || "")), () => console.log("000"))' "$1" "$accept"
  fi
}

# ---------------------------------------------------------------------------------------------------
# (d) Offline stand-ins: Docker Hub names that lessons use, built from Debian packages and pushed to
#     the mirror as library/<name>:<tag>, so `docker pull python:3.11-slim` in a sandbox just works.

_MANIFEST_TYPES='application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json'

# _registry_digests HOST:PORT REPO:TAG...: prints "REPO:TAG DIGEST" for each tag the registry has.
# One node process, all requests at once (node is there after step 1; one curl per tag is slower).
_registry_digests() {
  # shellcheck disable=SC2016 # JavaScript template literals, not shell expansions
  node -e 'const [reg, accept, ...refs] = process.argv.slice(1);
    Promise.all(refs.map(async (ref) => {
      const i = ref.lastIndexOf(":");
      try {
        const r = await fetch(`http://${reg}/v2/${ref.slice(0, i)}/manifests/${ref.slice(i + 1)}`,
          { method: "HEAD", headers: { accept }, signal: AbortSignal.timeout(5000) });
        const d = r.headers.get("docker-content-digest");
        if (r.status === 200 && d) console.log(`${ref} ${d}`);
      } catch {}
    }));' "$1" "$_MANIFEST_TYPES" "${@:2}"
}

# _standin_context NAME DIR: the build context; hello-world gets a binary from the host's gcc when it can.
_standin_context() {
  local name=$1 dir=$2 ctx
  if [[ "$name" != hello-world ]]; then echo "$dir"; return; fi
  ctx=$(mktemp -d "$SHIPSHAPE_DATA/context.XXXXXX")
  cp -a "$dir/." "$ctx/"
  if have gcc && [[ "$(uname -m)" == "$(docker version -f '{{.Server.Arch}}' 2>/dev/null | sed 's/amd64/x86_64/; s/arm64/aarch64/')" ]] &&
    gcc -static -Os -s -o "$ctx/hello" "$dir/hello.c" 2>/dev/null; then
    :
  else
    rm -f "$ctx/hello" # the Dockerfile compiles it in a build stage instead (slower, needs gcc from the mirror)
  fi
  echo "$ctx"
}

# _standin_repository DIR: where a stand-in lives in the mirror. Docker Hub's official images are
# library/<folder name>; others (jupyter/scipy-notebook) name their repository in a file beside the tags.
_standin_repository() {
  if [[ -f "$1/repository" ]]; then head -n 1 "$1/repository"; else echo "library/${1##*/}"; fi
}

ensure_standins() {
  local stamps="$SHIPSHAPE_DATA/standins" dir name repo hash tags tag stamp ok local_tag ctx reg digest pushed=0 kept=0 base_id
  if [[ -n "$SHIPSHAPE_REGISTRY_UPSTREAM" ]]; then
    note "online mode: the mirror passes through to $SHIPSHAPE_REGISTRY_UPSTREAM; a pull-through cache cannot take pushes, so no stand-ins are seeded"
    return 0
  fi
  mkdir -p "$stamps"
  reg="127.0.0.1:$SHIPSHAPE_REGISTRY_HOST_PORT"
  base_id=$(image_id "$SHIPSHAPE_BASE_IMAGE")
  # What the registry holds now, in one go: the first tag of each stand-in is enough to notice a
  # registry volume that was emptied or replaced (the stamps cover the other tags).
  local refs=() remote
  for dir in "$SHIPSHAPE_IMAGES_DIR"/standins/*/; do
    dir=${dir%/}
    [[ -f "$dir/tags" ]] || continue
    read -r -a tags <"$dir/tags"
    refs+=("$(_standin_repository "$dir"):${tags[0]}")
  done
  remote=$(_registry_digests "$reg" "${refs[@]}")
  for dir in "$SHIPSHAPE_IMAGES_DIR"/standins/*/; do
    dir=${dir%/} name=${dir##*/}
    [[ -f "$dir/Dockerfile" && -f "$dir/tags" ]] || continue
    # A stand-in that declares it (python) gets the package index's URL: by the mirror's address,
    # which depends on SHIPSHAPE_SUBNET, so that address is part of its hash.
    local index_args=()
    if grep -q '^ARG SHIPSHAPE_PACKAGE_INDEX' "$dir/Dockerfile"; then
      index_args=(--build-arg "SHIPSHAPE_PACKAGE_INDEX=http://$SHIPSHAPE_REGISTRY_IP:5000/simple/")
    fi
    repo=$(_standin_repository "$dir")
    hash=$(hash_tree "$dir" "$base_id" "${index_args[@]}")
    read -r -a tags <"$dir/tags"
    # Up to date = our stamps say we pushed this source hash, and the registry still has that digest.
    ok=1
    for tag in "${tags[@]}"; do
      stamp="$stamps/$name@$tag"
      if [[ ! -f "$stamp" || "$(cut -d' ' -f1 "$stamp")" != "$hash" ]]; then ok=0; break; fi
      if [[ "$tag" == "${tags[0]}" ]] && ! grep -qFx "$repo:$tag $(cut -d' ' -f2 "$stamp")" <<<"$remote"; then ok=0; break; fi
    done
    if ((ok)); then kept=$((kept + 1)); continue; fi

    local_tag="shipshape/standin-$name:${hash:0:12}"
    if ! image_exists "$local_tag"; then
      note "building stand-in $name (${tags[*]})"
      ctx=$(_standin_context "$name" "$dir")
      build_image "standin-$name" "$ctx" "$local_tag" "$hash" --label org.shipshape.offline-standin=true "${index_args[@]}"
      [[ "$ctx" == "$dir" ]] || rm -rf "$ctx"
    fi
    for tag in "${tags[@]}"; do
      progress "pushing $name:$tag"
      docker tag "$local_tag" "$reg/$repo:$tag"
      docker push "$reg/$repo:$tag" >"$SHIPSHAPE_LOGS/push.log" 2>&1 ||
        fail "Pushing $name:$tag to the registry mirror failed:" "$(log_tail "$SHIPSHAPE_LOGS/push.log")" \
          "Look at 'docker logs shipshape-registry', then run the same command again."
      digest=$(grep -oE 'digest: sha256:[0-9a-f]{64}' "$SHIPSHAPE_LOGS/push.log" | tail -n 1 | cut -d' ' -f2)
      # Only the extra tag; the image stays as $local_tag. Another checkout's set-up on the same engine
      # may have pushed and untagged the same name a moment ago, so a missing tag is no failure.
      docker rmi "$reg/$repo:$tag" >/dev/null 2>&1 || true
      printf '%s %s\n' "$hash" "$digest" >"$stamps/$name@$tag"
    done
    note "seeded ${repo#library/}: ${tags[*]}"
    pushed=$((pushed + 1))
  done
  note "stand-ins: $pushed seeded now, $kept already in the mirror"
}
