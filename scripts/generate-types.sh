#!/usr/bin/env bash
# Generates sdk/src/generated/schema.d.ts from openapi.yaml (openapi-typescript).
# `--check` regenerates into a temporary file and fails when the committed file differs,
# so the contract and the types the code compiles against cannot drift apart.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/sdk/src/generated/schema.d.ts"
PATH="$("$root/scripts/node-path.sh"):$PATH"

generate() {
  local raw
  raw="$(mktemp)"
  "$root/node_modules/.bin/openapi-typescript" "$root/openapi.yaml" --default-non-nullable false --output "$raw" >/dev/null
  { echo "// Generated from openapi.yaml by scripts/generate-types.sh: do not edit."; cat "$raw"; } >"$1"
  rm -f "$raw"
}

if [[ "${1:-}" == "--check" ]]; then
  tmp="$(mktemp)"
  trap 'rm -f "$tmp"' EXIT
  generate "$tmp"
  if ! diff -u "$out" "$tmp"; then
    echo "sdk/src/generated/schema.d.ts is out of date with openapi.yaml: run scripts/generate-types.sh" >&2
    exit 1
  fi
else
  generate "$out"
fi
