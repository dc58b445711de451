#!/usr/bin/env bash
# Builds Jaeger v2, at the version tools/jaeger/go.mod pins, into bin/jaeger
# for the tracing end-to-end test (cmd/millrace/jaeger_e2e_test.go). Jaeger
# has its own module so that Millrace's go.mod stays free of its
# dependencies.
#
# The build takes minutes and about 2.3 GB of memory, so the binary is kept
# in a cache outside the checkout (MILLRACE_CACHE_DIR, default
# ~/.cache/millrace), keyed by the module's go.mod and go.sum: a clean clone
# on a machine that keeps its home directory copies it instead of building.
set -euo pipefail
cd "$(dirname "$0")/../.."

key=$(cat tools/jaeger/go.mod tools/jaeger/go.sum | sha256sum | cut -c1-16)
cache_dir="${MILLRACE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/millrace}"
cached="$cache_dir/jaeger-$key"

if [ -x bin/jaeger ] && [ "$(cat bin/.jaeger-key 2>/dev/null)" = "$key" ]; then
  echo "jaeger: bin/jaeger is up to date"
  exit 0
fi
if [ ! -x "$cached" ]; then
  echo "jaeger: building github.com/jaegertracing/jaeger/cmd/jaeger (takes minutes)"
  mkdir -p "$cache_dir"
  (cd tools/jaeger && go build -o "$cached.tmp" github.com/jaegertracing/jaeger/cmd/jaeger)
  mv "$cached.tmp" "$cached"
fi
mkdir -p bin
cp "$cached" bin/jaeger.tmp
mv bin/jaeger.tmp bin/jaeger
echo "$key" > bin/.jaeger-key
echo "jaeger: bin/jaeger ready"
