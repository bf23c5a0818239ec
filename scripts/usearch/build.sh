#!/usr/bin/env bash
# Builds usearch's Node addon from the sources its npm package ships, with prefetch.patch applied
# (the graph walk prefetches neighbours' vectors: ~1.4x search QPS, see docs/benchmarks.md), and
# installs it as node_modules/usearch/build/Release/usearch.node, which usearch's loader
# (node-gyp-build) takes before the package's prebuilt binary. NumKong's kernels keep their
# run-time CPU dispatch, so the build runs on any CPU of its architecture, not only this one.
#
# Never fails setup: without a C and C++ compiler ($CC, $CXX: gcc, g++ by default), make, Python 3, Node's headers or node-gyp (npm's own
# copy), or if the patch does not apply or the build fails, it says why and the prebuilt binary is
# used. Idempotent: a stamp records the usearch version and patch built (or failed) for.
# AKIDB_USEARCH_BUILD=prebuilt removes the source build and skips it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
export PATH="$(scripts/node-path.sh):$PATH"

log() { printf '[setup] usearch: %s\n' "$*" >&2; }

pkg=node_modules/usearch
installed="$pkg/build/Release/usearch.node"
stamp="$pkg/build/akidb-source-build"
work=.tools/usearch-build
buildlog=.tools/usearch-build.log

if [[ ! -f "$pkg/binding.gyp" ]]; then
  log "no usearch sources in $pkg; using what the package ships"
  exit 0
fi
if [[ "${AKIDB_USEARCH_BUILD:-}" == prebuilt ]]; then
  rm -rf "$pkg/build"
  exit 0
fi

version="$(node -p "require('./$pkg/package.json').version")"
key="usearch ${version} $(sha256sum scripts/usearch/prefetch.patch scripts/usearch/build.sh | sha256sum | cut -c1-16)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "ok $key" && -f "$installed" ]]; then
  exit 0
fi
if [[ -f "$stamp" && "$(cat "$stamp")" == "failed $key" ]]; then
  exit 0 # reported when it failed; delete the stamp to try again
fi

prebuilt() {
  log "$1; the prebuilt binary stays (search is slower, see docs/benchmarks.md)"
  rm -f "$installed"
  mkdir -p "$(dirname "$stamp")"
  echo "failed $key" >"$stamp"
  exit 0
}

# Node's headers beside the running node (Node's own archive layout, or the npm `node` package's).
node_prefix="$(dirname "$(dirname "$(node -p process.execPath)")")"
nodedir=""
for candidate in "$node_prefix" "$node_prefix"/node_modules/node-*; do
  if [[ -f "$candidate/include/node/node_api.h" && -f "$candidate/include/node/common.gypi" ]]; then
    nodedir="$candidate"
    break
  fi
done
[[ -n "$nodedir" ]] || prebuilt "no Node headers next to $(node -p process.execPath)"
gyp=""
npm_cli="$(command -v npm || true)"
if [[ -n "$npm_cli" ]]; then
  gyp="$(dirname "$(readlink -f "$npm_cli")")/../node_modules/node-gyp/bin/node-gyp.js"
fi
[[ -n "$gyp" && -f "$gyp" ]] || prebuilt "npm's node-gyp not found"
for tool in "${CC:-gcc}" "${CXX:-g++}" make python3 patch; do
  command -v "$tool" >/dev/null || prebuilt "no $tool"
done

log "building usearch ${version} from source with scripts/usearch/prefetch.patch (once; ~2 min on 2 cores, log: $buildlog)"
started=$SECONDS
rm -rf "$work"
mkdir -p "$work"
# Inside the repository, so the build's `require('node-addon-api')` finds the root node_modules.
cp -r "$pkg"/{package.json,binding.gyp,javascript,include,numkong} "$work"/
(cd "$work" && patch -p1 --forward --quiet <"$root/scripts/usearch/prefetch.patch") >"$buildlog" 2>&1 ||
  prebuilt "prefetch.patch does not apply to usearch ${version}"
if ! (cd "$work" && node "$gyp" rebuild --nodedir="$nodedir" --jobs="$(nproc 2>/dev/null || echo 2)") >>"$buildlog" 2>&1; then
  tail -n 20 "$buildlog" >&2
  prebuilt "the build failed"
fi
mkdir -p "$(dirname "$installed")"
cp "$work/build/Release/usearch.node" "$installed.tmp"
mv "$installed.tmp" "$installed"
# A search through the package's own loader, which now takes this binary.
if ! node -e '
  const { Index } = require("usearch");
  const index = new Index({ dimensions: 4, metric: "ip", connectivity: 8 });
  index.add(1n, new Float32Array([1, 0, 0, 0]));
  index.add(2n, new Float32Array([0, 1, 0, 0]));
  if (index.search(new Float32Array([0, 1, 0, 0]), 1).keys[0] !== 2n) process.exit(1);
' >>"$buildlog" 2>&1; then
  prebuilt "the built binary failed its smoke test"
fi
rm -rf "$work"
echo "ok $key" >"$stamp"
log "built in $((SECONDS - started)) s"
