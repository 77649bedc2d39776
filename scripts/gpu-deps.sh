#!/usr/bin/env bash
# Prepares .deps/ for the GPU machine, which has CUDA, PyTorch, CMake, ninja and
# compute-sanitizer but no network and none of capcheck's C++ libraries. Run it
# here (a Debian machine with apt); then pass `carry: [".deps"]` to the device
# tool and run scripts/gpu.sh there. Idempotent: packages already unpacked are
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
echo "gpu-deps: ready; pass carry: [\".deps\"] to the device tool and run scripts/gpu.sh there"
