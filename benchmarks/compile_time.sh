#!/usr/bin/env bash
# What including leakguard costs a translation unit: compile seconds (median
# of --runs), preprocessed lines and the compiler's peak memory, for small
# representative files with and without leakguard. A measurement, not a test.
#
#   benchmarks/compile_time.sh                 # g++, -std=c++20 -O2 -g, 5 runs
#   benchmarks/compile_time.sh --cxx clang++-16 --runs 3
#   benchmarks/compile_time.sh --flags "-std=c++20 -O0 -g"
#   benchmarks/compile_time.sh --include /path/to/other/checkout/include   # compare versions
#
# Prints a Markdown table; each "+ leakguard" row also shows the difference
# to the row it extends. The files are written to a temporary directory;
# doctest, GoogleTest and Catch2 rows need their headers (doctest-dev,
# libgtest-dev, catch2).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cxx=g++
runs=5
flags="-std=c++20 -O2 -g"
include_dir="$(pwd)/include"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cxx) cxx="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --flags) flags="$2"; shift 2 ;;
    --include) include_dir="$2"; shift 2 ;;
    *) echo "usage: $0 [--cxx CXX] [--runs N] [--flags FLAGS] [--include DIR]" >&2; exit 2 ;;
  esac
done

work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT
include="-I${include_dir}"
# As the CMake and Meson targets do when libdw is installed: the runtime then
# compiles its DWARF reader instead of Abseil's symbolizer.
if pkg-config --exists libdw 2>/dev/null; then include+=" -DLEAKGUARD_HAVE_LIBDW=1"; fi

# ---- the files ------------------------------------------------------------------
# A request handler as a user writes it, without and with a scope.
body='
std::vector<std::string> handle(const std::string& request) {
  SCOPE
  std::vector<std::string> parts;
  std::string part;
  for (char c : request) {
    if (c == '"'"' '"'"') { parts.push_back(part); part.clear(); } else { part += c; }
  }
  parts.push_back(part);
  return parts;
}'
write_handler() {  # name, includes, scope line
  printf '#include <string>\n#include <vector>\n%b\n%s\n' "$2" "${body/SCOPE/$3}" >"${work}/$1.cpp"
}
write_handler plain "" ""
write_handler scope '#include <leakguard.hpp>' 'LEAKGUARD_SCOPE("handle");'
write_handler scope_disabled '#define LEAKGUARD_DISABLE 1\n#include <leakguard.hpp>' 'LEAKGUARD_SCOPE("handle");'
write_handler allocator '#include <leakguard.hpp>' 'std::vector<int, leakguard::allocator<int>> v{1, 2, 3};'
write_handler allocator_plain '' 'std::vector<int> v{1, 2, 3};'

# The translation unit that holds the implementation.
printf '#include <leakguard/global_new.hpp>\n' >"${work}/global_new.cpp"
if [[ -f "${include_dir}/leakguard/implementation.hpp" ]]; then
  printf '#include <leakguard/implementation.hpp>\n' >"${work}/implementation.cpp"
fi

# Test files: the framework alone, and with leakguard's integration.
test_body='TEST_CASE("parts") { CHECK(1 + 1 == 2); }'
printf '#include <doctest/doctest.h>\n%s\n' "${test_body}" >"${work}/doctest_plain.cpp"
printf '#include <doctest/doctest.h>\n#include <leakguard/doctest.hpp>\n%s\n' "${test_body}" >"${work}/doctest_lg.cpp"
gtest_body='TEST(Parts, Add) { EXPECT_EQ(1 + 1, 2); }'
printf '#include <gtest/gtest.h>\n%s\n' "${gtest_body}" >"${work}/gtest_plain.cpp"
printf '#include <gtest/gtest.h>\n#include <leakguard/gtest.hpp>\n%s\n' "${gtest_body}" >"${work}/gtest_lg.cpp"
# Catch2 v2 shows listeners only in the file that defines its main.
catch2_body='TEST_CASE("parts") { CHECK(1 + 1 == 2); }'
printf '#define CATCH_CONFIG_MAIN\n#include <catch2/catch.hpp>\n%s\n' "${catch2_body}" >"${work}/catch2_plain.cpp"
printf '#define CATCH_CONFIG_MAIN\n#include <catch2/catch.hpp>\n#include <leakguard/catch2.hpp>\n%s\n' "${catch2_body}" \
  >"${work}/catch2_lg.cpp"

# ---- measuring --------------------------------------------------------------------
# Prints "seconds lines peak_MB" for one file, or "- - -" if it does not compile.
measure() {
  local src="${work}/$1.cpp" times=() peak=0
  # shellcheck disable=SC2086
  if ! ${cxx} ${flags} ${include} -c "${src}" -o "${work}/out.o" 2>"${work}/err"; then
    echo "- - -"
    return
  fi
  for ((i = 0; i < runs; i++)); do
    # shellcheck disable=SC2086
    /usr/bin/time -f "%e %M" -o "${work}/time" ${cxx} ${flags} ${include} -c "${src}" -o "${work}/out.o"
    read -r secs kb <"${work}/time"
    times+=("${secs}")
    ((kb > peak)) && peak=${kb}
  done
  local median
  median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  # shellcheck disable=SC2086
  local lines
  lines=$(${cxx} ${flags} ${include} -E "${src}" | wc -l)
  echo "${median} ${lines} $((peak / 1024))"
}

declare -A secs lines mem
rows=(plain scope scope_disabled allocator_plain allocator global_new implementation
      doctest_plain doctest_lg gtest_plain gtest_lg catch2_plain catch2_lg)
for r in "${rows[@]}"; do
  [[ -f "${work}/${r}.cpp" ]] || continue
  read -r secs[$r] lines[$r] mem[$r] < <(measure "${r}")
done

describe() {
  case "$1" in
    plain) echo 'handler with `<vector>`, `<string>`' ;;
    scope) echo '+ `<leakguard.hpp>` and `LEAKGUARD_SCOPE()`' ;;
    scope_disabled) echo '+ the same with `LEAKGUARD_DISABLE`' ;;
    allocator_plain) echo 'a `std::vector<int>`' ;;
    allocator) echo '+ `<leakguard.hpp>`, `leakguard::allocator<int>`' ;;
    global_new) echo '`<leakguard/global_new.hpp>` alone (implementation TU)' ;;
    implementation) echo '`<leakguard/implementation.hpp>` alone' ;;
    doctest_plain) echo 'doctest test file' ;;
    doctest_lg) echo '+ `<leakguard/doctest.hpp>`' ;;
    gtest_plain) echo 'GoogleTest test file' ;;
    gtest_lg) echo '+ `<leakguard/gtest.hpp>`' ;;
    catch2_plain) echo 'Catch2 v2 main file (`CATCH_CONFIG_MAIN`)' ;;
    catch2_lg) echo '+ `<leakguard/catch2.hpp>`' ;;
  esac
}
base_of() {
  case "$1" in
    scope | scope_disabled) echo plain ;;
    allocator) echo allocator_plain ;;
    doctest_lg) echo doctest_plain ;;
    gtest_lg) echo gtest_plain ;;
    catch2_lg) echo catch2_plain ;;
  esac
}

echo "compiler: $(${cxx} --version | head -n 1); flags: ${flags}; median of ${runs} runs; headers: ${include_dir}; ${include#-I${include_dir}}"
echo
echo "| file | seconds | preprocessed lines | compiler memory (MB) | added seconds | added lines |"
echo "|---|---|---|---|---|---|"
for r in "${rows[@]}"; do
  [[ -n ${secs[$r]:-} ]] || continue
  added_s="" added_l=""
  b=$(base_of "${r}")
  if [[ -n ${b} && ${secs[$r]} != - && ${secs[$b]:-} != - && -n ${secs[$b]:-} ]]; then
    added_s=$(awk -v a="${secs[$r]}" -v b="${secs[$b]}" 'BEGIN { printf "%+.2f", a - b }')
    added_l=$(awk -v a="${lines[$r]}" -v b="${lines[$b]}" 'BEGIN { printf "%+d", a - b }')
  fi
  echo "| $(describe "${r}") | ${secs[$r]} | ${lines[$r]} | ${mem[$r]} | ${added_s} | ${added_l} |"
done
