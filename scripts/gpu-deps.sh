#!/usr/bin/env bash
# Prepares .deps/ for a GPU machine that has CUDA (and optionally PyTorch),
# CMake and ninja but no network or none of capcheck's C++ libraries. Run it on
# a Debian 12 machine with apt, copy .deps to the GPU machine's checkout, and
# run scripts/gpu.sh there (docs/gpu.md). Idempotent: packages already unpacked are
# kept, and a second run only fills in what is missing.
set -euo pipefail

root_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deps_dir="${root_dir}/.deps"
debs_dir="${deps_dir}/debs"
unpack_dir="${deps_dir}/root"

# Header-only or static libraries, plus the two shared ones (fmt, benchmark)
# whose .so files travel with them. GoogleTest travels too, so the GPU build
# never depends on which GoogleTest the image happens to ship.
packages=(
  librapidcheck-dev
  libeigen3-dev
  libcli11-dev
  nlohmann-json3-dev
  libfmt-dev
  libfmt9
  libbenchmark-dev
  libbenchmark1debian
  libgtest-dev
)

mkdir -p "${debs_dir}" "${unpack_dir}"
cd "${debs_dir}"
for package in "${packages[@]}"; do
  if ! compgen -G "${package}_*.deb" >/dev/null; then
    echo "gpu-deps: downloading ${package}"
    apt-get download "${package}"
  fi
done

stamp="${unpack_dir}/.unpacked"
touch -a "${stamp}"
for deb in "${debs_dir}"/*.deb; do
  name="$(basename "${deb}")"
  if ! grep -qxF "${name}" "${stamp}"; then
    echo "gpu-deps: unpacking ${name}"
    dpkg -x "${deb}" "${unpack_dir}"
    echo "${name}" >>"${stamp}"
  fi
done

# The documentation and man pages are not needed on the GPU machine.
rm -rf "${unpack_dir}/usr/share/doc" "${unpack_dir}/usr/share/man"
du -sh "${deps_dir}"
echo "gpu-deps: ready; copy .deps to the GPU machine's checkout and run scripts/gpu.sh there"
