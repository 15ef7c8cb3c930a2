#!/bin/sh
# The peer's shell command: `docker exec -it <sandbox> bash`, each new terminal on the next sandbox
# of the list the bench wrote (round-robin), so the peer serves the same shells in the same sandboxes.
set -eu
list="$BENCH_PEER_STATE/sandboxes"
n=$(flock "$list.lock" sh -c 'n=$(cat "$1.next" 2>/dev/null || echo 0); echo $((n + 1)) >"$1.next"; echo "$n"' sh "$list")
count=$(wc -l <"$list")
id=$(sed -n "$((n % count + 1))p" "$list")
exec docker exec -it "$id" bash
