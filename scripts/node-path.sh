#!/usr/bin/env bash
# Prints the directory that holds the Node AkiDB runs on: the repo's own Node 24 when setup
# installed one, else the machine's.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -x "$root/.tools/node/node_modules/.bin/node" ]]; then
  dirname "$(readlink -f "$root/.tools/node/node_modules/.bin/node")"
else
  dirname "$(command -v node)"
fi
