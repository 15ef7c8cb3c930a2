#!/bin/sh
# Same argument handling as the official redis image's entrypoint: options alone go to redis-server,
# which runs as the redis user with protected mode off (options given later on the line still win).
set -e
case "$1" in
  -* | *.conf) set -- redis-server "$@" ;;
esac
if [ "$1" = redis-server ]; then
  shift
  case " $* " in
    *" -v "* | *" --version "* | *" -h "* | *" --help "* | *" --test-memory "*) set -- redis-server "$@" ;; # no server starts
    *)
      case "${1:-}" in
        *.conf) conf=$1; shift; set -- redis-server "$conf" --protected-mode no "$@" ;;
        *) set -- redis-server --protected-mode no "$@" ;;
      esac
      ;;
  esac
  if [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis:redis '{}' + 2>/dev/null || true
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
  fi
fi
exec "$@"
