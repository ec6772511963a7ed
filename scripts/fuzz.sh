#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ (clang -fsanitize=fuzzer,address,undefined) and runs each for
# FUZZ_SECONDS (default 60) from its corpus in fuzz/corpus/<target>/. Fails on any finding (crash,
# sanitizer report, broken property, leak, timeout); the input that found it is left in
# build-fuzz/findings/<target>/ and its report in build-fuzz/<target>.log.
#   scripts/fuzz.sh                    all targets
#   scripts/fuzz.sh encap checksum     some of them
#   FUZZ_SECONDS=600 scripts/fuzz.sh   longer
#   FUZZ_DEFINES=-DVXTUN_FUZZ_PLANTED_BUG scripts/fuzz.sh express_rules   compile extra defines in
# New inputs that raise coverage go to build-fuzz/new/<target>/ (merge them into the corpus with
# -merge=1 when worth keeping); the corpus in the repository is only read.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
out=build-fuzz
cxx="${CXX_FUZZ:-clang++}"
if ! command -v "$cxx" >/dev/null; then
  echo "scripts/fuzz.sh: $cxx not found (scripts/install-deps.sh installs clang)" >&2
  exit 1
fi

# target -> the native sources it links besides fuzz/<target>_fuzz.cc
declare -A sources=(
  [express_rules]="native/express_rules.cc"
  [checksum]="native/tun_offload.cc"
  [tun_offload_segment]=""
  [tun_offload_coalesce]=""
  [encap]="native/encap.cc native/udp.cc"
)
all=(express_rules checksum tun_offload_segment tun_offload_coalesce encap)
targets=("$@")
[ "${#targets[@]}" -eq 0 ] && targets=("${all[@]}")

napi_include="$(node -p "require('node-addon-api').include_dir")"
node_include="${NODE_INCLUDE:-/usr/include/node}"
# The addon's files include napi.h for their bindings, which the targets never call: the N-API
# symbols they name (node provides them when the addon loads) and the addon's helpers in addon.cc
# get stubs that abort (generated from the linker's list of what is missing).
flags=(-std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
  -DNAPI_VERSION=8 -DNAPI_DISABLE_CPP_EXCEPTIONS -Inative -I"$napi_include" -I"$node_include"
  -ffunction-sections -fdata-sections -Wl,--gc-sections ${FUZZ_DEFINES:-})

mkdir -p "$out"
failed=()
for t in "${targets[@]}"; do
  if [ -z "${sources[$t]+set}" ]; then
    echo "scripts/fuzz.sh: no target $t (targets: ${all[*]})" >&2
    exit 2
  fi
  # shellcheck disable=SC2086
  if ! "$cxx" "${flags[@]}" "fuzz/${t}_fuzz.cc" ${sources[$t]} -Wl,--no-demangle -o "$out/$t" 2>"$out/$t.link"; then
    grep -oE "undefined reference to \`[A-Za-z0-9_]+'" "$out/$t.link" | sed -E "s/.*\`([A-Za-z0-9_]+)'/\1/" | sort -u |
      awk 'BEGIN { print "#include <stdlib.h>" } { print "void " $1 "(void) { abort(); }" }' >"$out/${t}_stubs.c"
    [ -s "$out/${t}_stubs.c" ] || { cat "$out/$t.link" >&2; exit 1; }
    # shellcheck disable=SC2086
    "${cxx%++}" -c "$out/${t}_stubs.c" -o "$out/${t}_stubs.o"
    # shellcheck disable=SC2086
    "$cxx" "${flags[@]}" "fuzz/${t}_fuzz.cc" ${sources[$t]} "$out/${t}_stubs.o" -o "$out/$t"
  fi
  mkdir -p "$out/new/$t" "$out/findings/$t"
  echo "fuzz $t: ${seconds}s from fuzz/corpus/$t ($(ls "fuzz/corpus/$t" | wc -l) inputs)"
  if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$out/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
      -artifact_prefix="$out/findings/$t/" "$out/new/$t" "fuzz/corpus/$t" >"$out/$t.log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$out/$t.log" | tail -n 2 | sed "s/^/  /"
  else
    echo "fuzz $t: FINDING (report: $out/$t.log, input: $out/findings/$t/)" >&2
    grep -E 'ERROR|runtime error|property does not hold|SUMMARY' "$out/$t.log" | head -n 5 | sed 's/^/  /' >&2
    failed+=("$t")
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "scripts/fuzz.sh: findings in ${failed[*]}" >&2
  exit 1
fi
echo "scripts/fuzz.sh: no findings"
