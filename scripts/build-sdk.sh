#!/usr/bin/env bash
# Builds the publishable @akidb/sdk into a directory (default .cache/sdk-dist): JavaScript and
# declarations compiled from sdk/src (sdk/tsconfig.build.json), the generated contract types, the
# README, and a package.json whose exports point at the compiled files. In this repository the
# workspace package exports its TypeScript source instead (Node runs it directly).
#   scripts/build-sdk.sh [OUT_DIR] && npm publish OUT_DIR
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(realpath -m "${1:-$root/.cache/sdk-dist}")"
PATH="$("$root/scripts/node-path.sh"):$PATH"

rm -rf "$out"
"$root/node_modules/.bin/tsc" -p "$root/sdk/tsconfig.build.json" --outDir "$out"
mkdir -p "$out/generated"
cp "$root/sdk/src/generated/schema.d.ts" "$out/generated/schema.d.ts"
cp "$root/sdk/README.md" "$out/README.md"
node -e '
  const [source, target] = process.argv.slice(1);
  const pkg = JSON.parse(require("node:fs").readFileSync(source, "utf8"));
  pkg.exports = { ".": { types: "./index.d.ts", default: "./index.js" } };
  require("node:fs").writeFileSync(target, JSON.stringify(pkg, null, 2) + "\n");
' "$root/sdk/package.json" "$out/package.json"
echo "$out"
