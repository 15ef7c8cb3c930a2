# shellcheck shell=bash
# Node.js >= 22.18 (the server runs .ts natively and uses node:sqlite; Astro and vitest need >= 22.12) and the npm packages of the repository.

SHIPSHAPE_NODE_MIN="${SHIPSHAPE_NODE_MIN:-22.18.0}"
_NODE_TOOLS="$SHIPSHAPE_ROOT/.tools/node"

# _node_ok BIN: true when BIN runs and is at least SHIPSHAPE_NODE_MIN.
_node_ok() {
  [[ -x "$(command -v "$1" 2>/dev/null)" ]] || return 1
  "$1" -e 'const v = (s) => s.split(".").map(Number);
    const [a, b] = [v(process.versions.node), v(process.argv[1])];
    const cmp = a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
    process.exit(cmp >= 0 ? 0 : 1)' "$SHIPSHAPE_NODE_MIN" 2>/dev/null
}

ensure_node() {
  if have node && _node_ok node; then
    note "node $(node -v) ($(command -v node))"
    return 0
  fi
  # The npm registry serves Node itself (package "node"), so no extra download site is needed.
  if ! _node_ok "$_NODE_TOOLS/node_modules/.bin/node"; then
    have npm || fail "Node.js >= $SHIPSHAPE_NODE_MIN is needed and neither a recent node nor npm was found." \
      "Install Node.js 22.18 or newer (https://nodejs.org), or any Node.js with npm so shipshape can fetch" \
      "Node 24 into .tools/node by itself. On Debian/Ubuntu:" "    sudo apt-get install -y npm"
    note "node ${SHIPSHAPE_NODE_MIN}+ not found (have: $(node -v 2>/dev/null || echo none)); installing node@24 into .tools/node"
    rm -rf "$_NODE_TOOLS"
    mkdir -p "$_NODE_TOOLS"
    run_with_progress "$SHIPSHAPE_LOGS/node-install.log" spinner 0 \
      npm install --prefix "$_NODE_TOOLS" --no-save --no-audit --no-fund node@24 ||
      fail "Installing Node 24 from the npm registry failed. The end of the log:" "$(log_tail "$SHIPSHAPE_LOGS/node-install.log")" \
        "Check that the npm registry is reachable (npm ping), then run the same command again."
    _node_ok "$_NODE_TOOLS/node_modules/.bin/node" ||
      fail "npm installed the node package but its binary does not run: $_NODE_TOOLS/node_modules/.bin/node." \
        "Remove the folder and try again:" "    rm -rf .tools/node && ./shipshape setup"
  fi
  export PATH="$_NODE_TOOLS/node_modules/.bin:$PATH"
  hash -r
  note "node $(node -v) (.tools/node)"
}

# npm ci only when package.json / package-lock.json / the node version changed since the last install.
ensure_npm_deps() {
  local stamp="$SHIPSHAPE_ROOT/node_modules/.shipshape-install-stamp" want install_cmd log="$SHIPSHAPE_LOGS/npm-install.log"
  [[ -f "$SHIPSHAPE_ROOT/package.json" ]] || { note "no package.json; nothing to install"; return 0; }
  want=$(_npm_inputs_hash)
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    note "node_modules is up to date"
    return 0
  fi
  have npm || fail "npm was not found next to node $(node -v)." "Install npm, then run the same command again. On Debian/Ubuntu:" "    sudo apt-get install -y npm"
  if [[ -f "$SHIPSHAPE_ROOT/package-lock.json" ]]; then install_cmd=(npm ci); else install_cmd=(npm install); fi
  note "${install_cmd[*]} (package.json or package-lock.json changed)"
  if ! _npm_run "${install_cmd[@]}" && [[ "${install_cmd[1]}" == ci ]] && grep -q 'can only install packages when your package.json and package-lock.json' "$log"; then
    # npm ci rejects lock files that omit other platforms' optional packages (an npm bug); npm install accepts them.
    warn "npm ci refused package-lock.json as out of sync; using npm install (check 'git diff package-lock.json')"
    install_cmd=(npm install)
    _npm_run "${install_cmd[@]}" || true
  fi
  [[ -f "$log.ok" ]] || fail "'${install_cmd[*]}' failed. The errors from the log ($log):" \
    "$(grep -E '^npm (error|ERR!) +[^ ]' "$log" | head -n 8 | sed 's/^/    | /')" \
    "Fix the cause above (often: the npm registry is unreachable, or package-lock.json is out of date - run 'npm install' once), then run the same command again."
  _npm_inputs_hash >"$stamp" # again: npm install may have rewritten package-lock.json
}

_npm_inputs_hash() {
  printf '%s node-abi-%s\n' "$(cat "$SHIPSHAPE_ROOT/package.json" "$SHIPSHAPE_ROOT/package-lock.json" 2>/dev/null | sha256)" \
    "$(node -p 'process.versions.modules')"
}

# _npm_run CMD...: run an npm install command in the repository; leaves $log.ok on success.
_npm_run() {
  rm -f "$SHIPSHAPE_LOGS/npm-install.log.ok"
  (cd "$SHIPSHAPE_ROOT" && run_with_progress "$SHIPSHAPE_LOGS/npm-install.log" spinner 0 "$@" --no-audit --no-fund) || return 1
  : >"$SHIPSHAPE_LOGS/npm-install.log.ok"
}
