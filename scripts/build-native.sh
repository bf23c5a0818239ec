#!/usr/bin/env bash
# Builds AkiDB's native addon (control-plane/native/*.cc, *.h: the HNSW index and the float32 JSON
# writer) into control-plane/native/build/akidb_native.node with one plain compiler call against the
# running Node's Node-API headers (no node-gyp). Rebuilds only when the sources, the compiler or the Node
# version change (a hash stamp beside the output). The baseline is the CPU family's generic target;
# the distance kernels pick AVX2/AVX-512 at run time (native/distance.h), so the binary is portable.
# Beside it, build/kernels-check: those kernels checked against the portable loops (native/test/).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/control-plane/native"
out="$src/build/akidb_native.node"
stamp="$src/build/.stamp"

log() { printf '[build-native] %s\n' "$*" >&2; }

node_bin="$(PATH="$("$root/scripts/node-path.sh"):$PATH" command -v node)"
cxx="${CXX:-}"
if [[ -z "$cxx" ]]; then
  for candidate in c++ g++ clang++; do
    if command -v "$candidate" >/dev/null 2>&1; then cxx="$candidate"; break; fi
  done
fi
if [[ -n "$cxx" ]] && ! command -v "$cxx" >/dev/null 2>&1; then
  log "CXX is set to '$cxx', which is not a command"
  cxx=""
fi
if [[ -z "$cxx" ]]; then
  log "no C++ compiler found (AkiDB builds its native addon, the vector index, at setup): install one, e.g."
  log "  Debian/Ubuntu: sudo apt-get install g++    Fedora: sudo dnf install gcc-c++"
  log "  macOS: xcode-select --install              or set CXX to a C++17 compiler"
  exit 1
fi

# Node's headers: <prefix>/include/node for a regular install; the npm `node` package (what
# scripts/setup.sh installs into .tools/node) keeps them in its platform package beside bin/.
include="$("$node_bin" -e '
const fs = require("node:fs"), path = require("node:path");
const bin = fs.realpathSync(process.execPath);
const prefix = path.dirname(path.dirname(bin));
const tries = [path.join(prefix, "include", "node")];
for (const base of [path.join(prefix, "node_modules"), path.dirname(prefix)]) {
  try {
    for (const name of fs.readdirSync(base))
      if (name.startsWith("node-")) tries.push(path.join(base, name, "include", "node"));
  } catch {}
}
const found = tries.find((dir) => fs.existsSync(path.join(dir, "node_api.h")));
process.stdout.write(found ?? "");
')"
if [[ -z "$include" ]]; then
  log "Node's headers (node_api.h) were not found beside $node_bin: install a Node that ships"
  log "include/node (the nodejs.org builds and nvm do; Debian: sudo apt-get install libnode-dev),"
  log "or remove .tools/node and re-run scripts/setup.sh"
  exit 1
fi

flags=(-O3 -std=c++17 -shared -fPIC -fvisibility=hidden -Wall -Wextra -I"$include")
case "$(uname -s)" in
  Darwin) flags+=(-undefined dynamic_lookup) ;;
  *) flags+=(-pthread) ;;
esac

hash="$( (cat "$src"/*.cc "$src"/*.h "$src"/test/*.cc; printf '%s\n' "${flags[*]}"; "$cxx" --version | head -1; "$node_bin" --version) | cksum)"
if [[ -f "$out" && -f "$stamp" && "$(cat "$stamp")" == "$hash" ]]; then
  exit 0
fi

log "compiling the native addon (vector index, JSON writer) with $cxx"
mkdir -p "$src/build"
"$cxx" "${flags[@]}" "$src/addon.cc" -o "$out.tmp"
mv "$out.tmp" "$out"
# The distance kernels' check against the portable loops (run by control-plane/test/native-kernels.test.ts).
"$cxx" -O3 -std=c++17 -Wall -Wextra "$src/test/kernels.cc" -o "$src/build/kernels-check"
printf '%s' "$hash" >"$stamp"
