# shellcheck shell=bash
# Shared helpers for the set-up scripts: progress output, logging, failure paragraphs.
# Sourced by ./shipshape; expects SHIPSHAPE_ROOT to be the repository root.

: "${SHIPSHAPE_ROOT:?SHIPSHAPE_ROOT must be set}"
# Same folder as the server's SHIPSHAPE_DATA_DIR (relative to the repository), where it reads sandbox-image.
SHIPSHAPE_DATA="${SHIPSHAPE_DATA_DIR:-.data}"
[[ "$SHIPSHAPE_DATA" == /* ]] || SHIPSHAPE_DATA="$SHIPSHAPE_ROOT/$SHIPSHAPE_DATA"
SHIPSHAPE_LOGS="$SHIPSHAPE_DATA/logs"
mkdir -p "$SHIPSHAPE_LOGS"

# Colours and in-place redraws only on a terminal; CI logs get plain, sparse lines.
if [[ -t 1 && "${CI:-}" != true && -z "${NO_COLOR:-}" ]]; then
  _TTY=1 _B=$'\e[1m' _DIM=$'\e[2m' _RED=$'\e[31m' _GRN=$'\e[32m' _YEL=$'\e[33m' _OFF=$'\e[0m'
else
  _TTY=0 _B='' _DIM='' _RED='' _GRN='' _YEL='' _OFF=''
fi

_STEP_NAME='' _STEP_START=0 _LAST_PROGRESS_TEXT='' _LAST_PROGRESS_AT=0 _SETUP_START=$SECONDS

# Milliseconds since the epoch (bash 5's EPOCHREALTIME; whole seconds with older bash, e.g. macOS's 3.2).
now_ms() {
  if [[ -n "${EPOCHREALTIME:-}" ]]; then
    local t=${EPOCHREALTIME/[.,]/}
    echo $((10#$t / 1000))
  else
    echo $(($(date +%s) * 1000))
  fi
}
_fmt_ms() { local ms=$1; printf '%d.%ds' $((ms / 1000)) $((ms % 1000 / 100)); }

# step "3/8" "Building the sandbox image": closes the previous step and opens a new one.
step() {
  step_done
  _STEP_NAME="$2" _STEP_START=$(now_ms)
  printf '%s[%s]%s %s\n' "$_B" "$1" "$_OFF" "$2"
}

step_done() {
  [[ -n "$_STEP_NAME" ]] || return 0
  _clear_progress
  printf '      %sdone%s %s(%s)%s\n' "$_GRN" "$_OFF" "$_DIM" "$(_fmt_ms $(($(now_ms) - _STEP_START)))" "$_OFF"
  _STEP_NAME=''
}

# note "text": an indented detail line under the current step.
note() { _clear_progress; printf '      %s\n' "$*"; }
warn() { _clear_progress; printf '      %swarning:%s %s\n' "$_YEL" "$_OFF" "$*" >&2; }

# progress "text": on a terminal, redraw one line; in CI, print only when it changed and at most every 10 s.
progress() {
  local text="$1" elapsed
  elapsed=$(_fmt_ms $(($(now_ms) - _STEP_START)))
  if ((_TTY)); then
    printf '\r\e[K      %s %s%s%s' "${text:0:100}" "$_DIM" "$elapsed" "$_OFF"
    _LAST_PROGRESS_TEXT=x
  elif [[ "$text" != "$_LAST_PROGRESS_TEXT" ]] && ((SECONDS - _LAST_PROGRESS_AT >= 10)); then
    printf '      %s (%s)\n' "${text:0:100}" "$elapsed"
    _LAST_PROGRESS_TEXT="$text" _LAST_PROGRESS_AT=$SECONDS
  fi
}

_clear_progress() {
  if ((_TTY)) && [[ -n "$_LAST_PROGRESS_TEXT" ]]; then printf '\r\e[K'; fi
  _LAST_PROGRESS_TEXT='' _LAST_PROGRESS_AT=0
}

# fail "text" ... : what went wrong and the exact command that fixes it; never a stack trace.
# Arguments are joined into wrapped prose; an argument starting with spaces (a command to copy,
# a log excerpt) is printed as it is, on its own lines.
fail() {
  local arg text=''
  _clear_progress
  {
    printf '\n%sshipshape set-up stopped%s%s\n\n' "$_RED$_B" "${_STEP_NAME:+ at: $_STEP_NAME}" "$_OFF"
    for arg in "$@"; do
      if [[ "$arg" == " "* ]]; then
        [[ -z "$text" ]] || printf '%s\n' "$text" | fold -s -w 96 | sed 's/^/  /'
        printf '%s\n' "$arg" | sed 's/^/  /'
        text=''
      else
        text+="${text:+ }$arg"
      fi
    done
    [[ -z "$text" ]] || printf '%s\n' "$text" | fold -s -w 96 | sed 's/^/  /'
    printf '\n'
  } >&2
  exit 1
}

# Unexpected errors (a command failing under set -e) end with a short paragraph, not silence.
_on_error() {
  local rc=$1 line=$2 cmd=$3
  trap - ERR
  fail "An unexpected error happened (exit code $rc) while running:" "    $cmd" \
    "(set-up script line $line). Logs of the long steps are in $SHIPSHAPE_LOGS/." \
    "Run the same command again with SHIPSHAPE_DEBUG=1 to see every command as it runs."
}

# log_tail FILE: the end of a log, for failure paragraphs.
log_tail() { tail -n "${2:-15}" "$1" 2>/dev/null | sed 's/^/    | /'; }

# run_with_progress LOG KIND TOTAL CMD...: run CMD with its output in LOG, showing progress.
#   KIND=debootstrap counts "I: Retrieving/Validating/Unpacking/Configuring/Extracting" lines against TOTAL;
#   KIND=docker-build shows the legacy builder's "Step N/M"; KIND=spinner shows elapsed time only.
run_with_progress() {
  local log=$1 kind=$2 total=$3 pid rc=0 n pct text spin='|/-'"\\" i=0
  shift 3
  : >"$log"
  "$@" >"$log" 2>&1 </dev/null &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    case "$kind" in
      debootstrap)
        n=$(grep -cE '^I: (Retrieving|Validating|Extracting|Unpacking|Configuring) ' "$log" || true)
        pct=$((n * 100 / total)); ((pct > 99)) && pct=99
        text="$pct% $(grep -E '^I: ' "$log" | tail -n 1 | cut -c4-)" ;;
      docker-build)
        text=$(grep -oE '^Step [0-9]+/[0-9]+ : .*' "$log" | tail -n 1 || true)
        if [[ "$text" =~ ^Step\ ([0-9]+)/([0-9]+) ]]; then
          text="$(((BASH_REMATCH[1] - 1) * 100 / BASH_REMATCH[2]))% ${text}"
        fi ;;
      *) text="${spin:i++%4:1} working" ;;
    esac
    [[ -z "$text" ]] || progress "$text"
    sleep 0.3
  done
  wait "$pid" || rc=$?
  _clear_progress
  return "$rc"
}

have() { command -v "$1" >/dev/null 2>&1; }
is_root() { [[ $(id -u) -eq 0 ]]; }

# sha256 of stdin, hex only (GNU sha256sum, or shasum on macOS).
sha256() {
  if have sha256sum; then sha256sum | cut -c1-64; else shasum -a 256 | cut -c1-64; fi
}

# sha256 of a folder's files (names, executable bits, contents) plus extra strings; used to tag images by their sources.
hash_tree() {
  local dir=$1 sum f x sha=(sha256sum)
  shift
  have sha256sum || sha=(shasum -a 256)
  {
    # One checksum process for the whole tree: warm runs hash every image folder.
    while read -r sum f; do
      f=${f#\*} x=-
      [[ -x "$dir/$f" ]] && x=x
      printf '%s %s %s\n' "$f" "$x" "$sum"
    done < <(cd "$dir" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 "${sha[@]}")
    printf '%s\n' "$@"
  } | sha256
}

# with_timeout SECONDS CMD...: coreutils timeout when there is one (not on stock macOS).
with_timeout() {
  local secs=$1
  shift
  if have timeout; then timeout "$secs" "$@"; else "$@"; fi
}

# apt_install PKG...: only for root on Debian/Ubuntu; runs apt-get update once per set-up.
_APT_UPDATED=0
apt_install() {
  local log="$SHIPSHAPE_LOGS/apt.log"
  is_root && have apt-get || return 1
  if ((!_APT_UPDATED)); then
    note "apt-get update"
    run_with_progress "$log.update" spinner 0 apt-get update || { log_tail "$log.update" >&2; return 1; }
    _APT_UPDATED=1
  fi
  note "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive run_with_progress "$log" spinner 0 \
    apt-get install -y --no-install-recommends "$@" || { log_tail "$log" >&2; return 1; }
}
