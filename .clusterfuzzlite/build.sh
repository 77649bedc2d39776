#!/bin/bash -eu
# Builds capcheck's libFuzzer harnesses for ClusterFuzzLite / OSS-Fuzz (docs/fuzzing.md,
# "ClusterFuzzLite and OSS-Fuzz"). It runs in the image of .clusterfuzzlite/Dockerfile, in the
# environment the image's `compile` sets up:
#
#   CC, CXX, CFLAGS, CXXFLAGS   the compiler and its flags: sanitizer, coverage instrumentation
#                               (-fsanitize=fuzzer-no-link), and in the image -stdlib=libc++
#   LIB_FUZZING_ENGINE          what a fuzz target links for libFuzzer's main (-fsanitize=fuzzer)
#   SRC, WORK, OUT              sources (capcheck in $SRC/capcheck), scratch, results
#
# Results in $OUT, for each harness of the registry in fuzz/CMakeLists.txt: the binary <name>,
# <name>_seed_corpus.zip (its seed corpus, fuzz/corpus/<...>/) and, where it has one,
# <name>.dict (its libFuzzer dictionary).
#
# The dependencies the Dockerfile cloned into $SRC/deps are built first, with the same compiler
# and flags, into $WORK/capcheck-deps; one that is absent there is taken from the system (so the
# script also runs outside the image, with the packages of scripts/setup.sh).

capcheck_src="$SRC/capcheck"
deps_prefix="$WORK/capcheck-deps"
build_dir="$WORK/capcheck-build"
jobs="$(nproc)"

# build_dep <name> [cmake options...]: configure, build and install $SRC/deps/<name>.
build_dep() {
  local name="$1"
  shift
  if [ ! -d "$SRC/deps/$name" ]; then
    echo "build.sh: no $SRC/deps/$name, using the system's $name"
    return 0
  fi
  cmake -S "$SRC/deps/$name" -B "$WORK/capcheck-deps-build/$name" -G Ninja \
    -DCMAKE_BUILD_TYPE=None \
    -DCMAKE_CXX_COMPILER="$CXX" \
    -DCMAKE_INSTALL_PREFIX="$deps_prefix" \
    -DCMAKE_INSTALL_LIBDIR=lib \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
    -DBUILD_SHARED_LIBS=OFF \
    "$@"
  cmake --build "$WORK/capcheck-deps-build/$name" -j"$jobs"
  cmake --install "$WORK/capcheck-deps-build/$name"
}

build_dep nlohmann_json -DJSON_BuildTests=OFF -DJSON_Install=ON
build_dep CLI11 -DCLI11_BUILD_TESTS=OFF -DCLI11_BUILD_EXAMPLES=OFF -DCLI11_BUILD_DOCS=OFF \
  -DCLI11_PRECOMPILED=OFF -DCLI11_INSTALL=ON
build_dep fmt -DFMT_TEST=OFF -DFMT_DOC=OFF -DFMT_INSTALL=ON
build_dep rapidcheck -DRC_ENABLE_TESTS=OFF -DRC_ENABLE_EXAMPLES=OFF

# CMAKE_BUILD_TYPE=None: no build-type flags (-O2 -g -DNDEBUG) on top of $CXXFLAGS, and the
# library's assertions stay on. CAPCHECK_FUZZ_ENGINE: the harnesses link $LIB_FUZZING_ENGINE, and
# the library layers rely on $CXXFLAGS for the instrumentation (fuzz/CMakeLists.txt).
cmake -S "$capcheck_src" -B "$build_dir" -G Ninja \
  -DCMAKE_BUILD_TYPE=None \
  -DCMAKE_CXX_COMPILER="$CXX" \
  -DCMAKE_PREFIX_PATH="$deps_prefix" \
  -DCAPCHECK_FUZZ=ON \
  -DCAPCHECK_FUZZ_ENGINE="$LIB_FUZZING_ENGINE" \
  -DCAPCHECK_SANITIZE=OFF \
  -DCAPCHECK_ENABLE_TORCH=OFF \
  -DCAPCHECK_ENABLE_CUDA=OFF \
  -DCAPCHECK_ENABLE_PYTHON=OFF \
  -DCAPCHECK_BUILD_TESTS=OFF \
  -DCAPCHECK_BUILD_BENCH=OFF \
  -DCAPCHECK_BUILD_CLI=OFF \
  -DCAPCHECK_INSTALL=OFF

# One line a harness: name, binary, seed corpus directory, dictionary or "-".
targets_file="$build_dir/fuzz/fuzz-targets.tsv"
names=()
while IFS=$'\t' read -r name _ _ _; do
  case "$name" in '#'*|'') continue ;; esac
  names+=("$name")
done <"$targets_file"
if [ ${#names[@]} -eq 0 ]; then
  echo "build.sh: no fuzz harness in $targets_file" >&2
  exit 1
fi
cmake --build "$build_dir" -j"$jobs" --target "${names[@]}"

# zip_dir <archive> <directory>: the directory's files, without the directory's path.
zip_dir() {
  local archive="$1" dir="$2"
  rm -f "$archive"
  if command -v zip >/dev/null 2>&1; then
    (cd "$dir" && zip -q -r "$archive" .)
  else
    (cd "$dir" && python3 -m zipfile -c "$archive" .)
  fi
}

mkdir -p "$OUT"
while IFS=$'\t' read -r name binary corpus dict; do
  case "$name" in '#'*|'') continue ;; esac
  cp "$binary" "$OUT/$name"
  zip_dir "$OUT/${name}_seed_corpus.zip" "$corpus"
  extra=""
  if [ "$dict" != "-" ]; then
    cp "$dict" "$OUT/$name.dict"
    extra=", $name.dict"
  fi
  echo "build.sh: $OUT/$name, ${name}_seed_corpus.zip ($(ls "$corpus" | wc -l) inputs)$extra"
done <"$targets_file"
