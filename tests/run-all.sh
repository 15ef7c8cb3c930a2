#!/usr/bin/env bash
# Every test layer, in order of speed; any failure fails the run. Called by `./shipshape test`
# after set-up, so Node, the Docker engine, the images and Chromium are there.
set -euo pipefail
cd "$(dirname "$0")/.."

section() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# The build comes first: it also generates the content collection types the type check reads.
section "Build the site"
npx astro build --silent 2>&1 | tail -n 20

section "Type check"
npx tsc --noEmit -p tsconfig.json

section "Unit tests (no Docker)"
npx vitest run --project unit

section "Integration tests (real Docker engine)"
npx vitest run --project integration

section "Security: attacks, faults and fuzzing"
npx vitest run --project security
npx vitest run --project security-alone

section "Lesson CI: every exercise fails on a fresh sandbox and passes after its solution"
npx vitest run --project lessons

section "Scale-out: servers sharing one Postgres behind a proxy"
npx vitest run --project scaleout

section "Browser tests (Chromium)"
npx vitest run --project browser
