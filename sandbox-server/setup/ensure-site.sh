# shellcheck shell=bash
# The built site (dist/), rebuilt only when the lessons, exercises or the site's code changed.

ensure_site() {
  local stamp="$SHIPSHAPE_DATA/site-stamp" want log="$SHIPSHAPE_LOGS/astro-build.log" d
  want=$(
    # contracts/: the exercise and quiz schemas and the API shapes the pages are built against.
    for d in src content public contracts; do [[ -d "$SHIPSHAPE_ROOT/$d" ]] && hash_tree "$SHIPSHAPE_ROOT/$d"; done
    sha256 <"$SHIPSHAPE_ROOT/astro.config.mjs"
    sha256 <"$SHIPSHAPE_ROOT/package-lock.json"
  )
  if [[ -f "$stamp" && -f "$SHIPSHAPE_ROOT/dist/index.html" && "$(cat "$stamp")" == "$want" ]]; then
    note "dist/ is up to date"
    return 0
  fi
  if ! run_with_progress "$log" spinner 0 npx astro build; then
    log_tail "$log" 30
    fail "The site did not build." \
      "The lines above say which lesson or file is wrong and how to fix it (the whole log is in $log). Fix it and run the same command again."
  fi
  printf '%s\n' "$want" >"$stamp"
  note "built $(find "$SHIPSHAPE_ROOT/dist" -name index.html | wc -l) pages into dist/"
}
