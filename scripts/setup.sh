#!/usr/bin/env bash
# Installs everything capcheck needs on a fresh Debian 12 machine (idempotent:
# apt is skipped when every package is already installed).
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  librapidcheck-dev libgtest-dev libgmock-dev libbenchmark-dev
  libeigen3-dev libcli11-dev nlohmann-json3-dev libfmt-dev
  libtorch-dev
  python3-torch pybind11-dev python3-pytest python3-hypothesis python3-dev
  clang-14 libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo_cmd apt-get update -q
$sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
