#!/usr/bin/env bash
# Builds the addon with AddressSanitizer and UndefinedBehaviorSanitizer (g++, in build-asan/, apart
# from build/) and runs the tests that throw hostile traffic at a node with it: the vxtun processes
# load it through VXTUN_ADDON, with libasan preloaded (node itself is not instrumented). Fails if a
# test fails or any sanitizer reports (reports: build-asan/reports/). Needs root (namespaces).
#   scripts/asan-check.sh                                  the hostile-traffic tests
#   scripts/asan-check.sh test/integration/express.test.ts others
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
out="$root/build-asan"
tests=("$@")
[ "${#tests[@]}" -eq 0 ] && tests=(test/integration/bad-input.test.ts)

mkdir -p "$out/gyp"
cp binding.gyp "$out/gyp/"
ln -sfn "$root/native" "$out/gyp/native"
ln -sfn "$root/node_modules" "$out/gyp/node_modules"
sanitize="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g ${ASAN_DEFINES:-}"
addon="$out/gyp/build/Release/vxtun_native.node"
# Rebuilt when a source, binding.gyp or the flags changed since the last build.
if [ ! -f "$addon" ] || [ "$(cat "$out/flags" 2>/dev/null)" != "$sanitize" ] || [ -n "$(find native binding.gyp -newer "$addon")" ]; then
  (cd "$out/gyp" && CXXFLAGS="$sanitize" LDFLAGS="-fsanitize=address,undefined" \
    npx node-gyp rebuild --nodedir=/usr >"$out/build.log" 2>&1) || { tail -n 30 "$out/build.log" >&2; exit 1; }
  echo "$sanitize" >"$out/flags"
fi
if ! nm -D "$addon" | grep -c __asan_report >/dev/null; then
  echo "scripts/asan-check.sh: $addon is not instrumented" >&2
  exit 1
fi
[ -f dist/src/cli/main.js ] || npx tsc -p tsconfig.json

rm -rf "$out/reports"
mkdir -p "$out/reports"
libasan="$(g++ -print-file-name=libasan.so)"
libubsan="$(g++ -print-file-name=libubsan.so)"
# The sanitizer runtimes must come first in a process that loads the addon: preloaded in every
# process of the run (the programs the tests start as well, harmless with leak detection off).
status=0
VXTUN_ADDON="$addon" LD_PRELOAD="$libasan:$libubsan" \
  ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:log_path=$out/reports/asan" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$out/reports/ubsan" \
  npx vitest run "${tests[@]}" || status=$?
if compgen -G "$out/reports/*" >/dev/null; then
  echo "scripts/asan-check.sh: sanitizer reports:" >&2
  for f in "$out"/reports/*; do echo "== $f" >&2; head -n 30 "$f" >&2; done
  exit 1
fi
[ "$status" -eq 0 ] || { echo "scripts/asan-check.sh: tests failed (exit $status)" >&2; exit "$status"; }
echo "scripts/asan-check.sh: no sanitizer reports"
