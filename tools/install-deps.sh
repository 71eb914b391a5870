#!/usr/bin/env bash
# Installs what metadistill needs to build, test and run on Debian 12 (as root, or with sudo).
# Usage: tools/install-deps.sh [--reference]   (--reference adds Debian's PyTorch for the fixture
# and benchmark-twin scripts; the tests themselves do not need it)
set -euo pipefail
packages=(
  build-essential cmake pkg-config git clang-format
  libopenblas-dev libopenmpi-dev openmpi-bin
  libhdf5-dev hdf5-tools zlib1g-dev
  libboost-program-options-dev libboost-dev libyaml-cpp-dev libjpeg62-turbo-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  dataset-fashion-mnist
  slurm-wlm munge
  python3 python3-numpy python3-h5py python3-pandas python3-matplotlib python3-pytest python3-yaml
  python3-scipy python3-venv python3-setuptools python3-wheel
  chromium                 # headless rendering of the HTML report in its test (skipped without)
)
if [[ "${1:-}" == "--reference" ]]; then
  packages+=(python3-torch python3-torchvision)
fi
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
