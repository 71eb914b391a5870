#!/usr/bin/env bash
# Builds what the GPU checks need and writes a self-contained folder to carry to a GPU machine
# (issue 15): DIR/run.sh runs every GPU check there in one call (tests/gpu/bundle-run.sh).
#
# Usage: tests/gpu/bundle.sh DIR
#   DIR/bin/metadistill, DIR/bin/test_gpu   Release, CUDA backend (MD_CUDA_ARCHS, default "80;90"),
#                                           stripped. There are no other GPU benchmark binaries:
#                                           the whole-step benchmark is `metadistill bench`.
#   DIR/libs.tar.xz, DIR/libs.txt           every shared library the binaries need except glibc,
#                                           libstdc++, libgcc_s and the CUDA libraries (OpenBLAS,
#                                           gfortran, gomp, HDF5, yaml-cpp, Boost, MPI, ...), packed
#   DIR/cuda-sonames.txt                    the CUDA libraries run.sh must find there (versioned
#                                           sonames; linked, dlopen'ed by cuDNN, or the driver)
#   DIR/scripts/                            the PyTorch twin (compare_steps.py, bench_step_torch.py,
#                                           bench_common.py) and make_synthetic_idx.py
#   DIR/data/                               the synthetic IDX set the trials train on
#   DIR/run.sh, DIR/BUNDLE.txt              the checks; what was built, from which commit
# Prints the bundle's size and fails when it exceeds MD_BUNDLE_MAX_MIB (default 48: the device
# tool carries 64 MiB, the repository's own files included).
#
# Environment: BUILD_DIR (default build-bundle in the repository), MD_CUDA_ARCHS, JOBS (default
# nproc), MD_BUNDLE_NO_BUILD=1 (take the binaries already in BUILD_DIR), PYTHON (for the data;
# needs numpy; default /usr/bin/python3).
set -euo pipefail

if [[ $# -ne 1 || "$1" == -* ]]; then
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' | head -n -1 >&2
  exit 2
fi
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dest="$1"
build_dir="${BUILD_DIR:-${repo}/build-bundle}"
archs="${MD_CUDA_ARCHS:-80;90}"
jobs="${JOBS:-$(nproc)}"
python="${PYTHON:-/usr/bin/python3}"
max_mib="${MD_BUNDLE_MAX_MIB:-48}"
log() { echo "[bundle] $*" >&2; }

if [[ -e "${dest}" && ! -f "${dest}/BUNDLE.txt" ]] && [[ -n "$(ls -A "${dest}" 2> /dev/null)" ]]; then
  log "${dest} exists and is not a bundle: refusing to replace it"
  exit 2
fi
if ! command -v nvcc > /dev/null 2>&1; then
  if [[ -x /usr/local/cuda/bin/nvcc ]]; then export PATH="/usr/local/cuda/bin:${PATH}"; else
    log "nvcc not found (on PATH or /usr/local/cuda/bin): the bundle needs the CUDA backend"; exit 2; fi
fi

# ---- build
if [[ "${MD_BUNDLE_NO_BUILD:-0}" != 1 ]]; then
  generator=()
  if command -v ninja > /dev/null && [[ ! -f "${build_dir}/Makefile" ]]; then generator=(-G Ninja); fi
  log "configuring ${build_dir} (CUDA archs ${archs})"
  cmake -S "${repo}" -B "${build_dir}" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DMD_CUDA=ON \
    "-DMD_CUDA_ARCHS=${archs}" -DMD_BUILD_TESTS=ON -DMD_BUILD_BENCH=OFF -DMD_ENGINE_ONLY=OFF > /dev/null
  log "building metadistill and test_gpu with ${jobs} jobs"
  cmake --build "${build_dir}" --target metadistill test_gpu -j "${jobs}"
fi
binaries=("${build_dir}/metadistill" "${build_dir}/tests/gpu/test_gpu")
for binary in "${binaries[@]}"; do
  [[ -x "${binary}" ]] || { log "${binary} is missing (build failed, or MD_BUNDLE_NO_BUILD without a build)"; exit 1; }
done
if ! grep -q '^MD_CUDA:BOOL=ON' "${build_dir}/CMakeCache.txt"; then
  log "${build_dir} is not a CUDA build"; exit 1
fi

stage="$(mktemp -d)"
trap 'rm -rf "${stage}"' EXIT
mkdir -p "${stage}/bundle/bin" "${stage}/bundle/scripts" "${stage}/libs"
bundle="${stage}/bundle"

for binary in "${binaries[@]}"; do
  cp "${binary}" "${bundle}/bin/"
  strip --strip-unneeded "${bundle}/bin/${binary##*/}"
done

# ---- libraries: glibc, libstdc++ and libgcc_s stay (every target has them, at least as new);
# the CUDA ones are found on the target by run.sh; everything else is carried.
is_system() {
  case "$1" in
    linux-vdso.so* | ld-linux*.so* | libc.so.* | libm.so.* | libmvec.so.* | libpthread.so.* | \
      libdl.so.* | librt.so.* | libresolv.so.* | libutil.so.* | libanl.so.* | libnsl.so.* | \
      libBrokenLocale.so.* | libstdc++.so.* | libgcc_s.so.*) return 0 ;;
  esac
  return 1
}
is_cuda() {
  case "$1" in
    libcuda.so.* | libcudart.so.* | libcublas.so.* | libcublasLt.so.* | libcudnn*.so.* | libnccl.so.* | \
      libnvrtc*.so.* | libnvJitLink.so.* | libcufft*.so.* | libcurand.so.* | libcusolver*.so.* | \
      libcusparse*.so.* | libnvidia-*.so.* | libnvToolsExt.so.*) return 0 ;;
  esac
  return 1
}
declare -A cuda_needed=()
: > "${bundle}/libs.txt"
for binary in "${binaries[@]}"; do
  listing="$(ldd "${binary}")"
  if grep -q "not found" <<< "${listing}"; then
    log "ldd cannot resolve every library of ${binary} here:"; grep "not found" <<< "${listing}" >&2; exit 1
  fi
  while read -r name arrow path _; do
    [[ "${arrow}" == "=>" && -e "${path}" ]] || continue
    if is_system "${name}"; then continue; fi
    if is_cuda "${name}"; then cuda_needed[${name}]="${path}"; continue; fi
    if [[ ! -e "${stage}/libs/${name}" ]]; then
      cp -L "${path}" "${stage}/libs/${name}"
      package="$(dpkg -S "$(readlink -f "${path}")" 2> /dev/null | cut -d: -f1 | head -n 1 || true)"
      printf '%-36s %8s KiB  %s%s\n' "${name}" "$(du -k "${stage}/libs/${name}" | cut -f1)" "${path}" \
        "${package:+ (${package})}" >> "${bundle}/libs.txt"
    fi
  done <<< "${listing}"
done
# The carried libraries need nothing new either (ldd above is transitive, this checks it).
for lib in "${stage}"/libs/*; do
  LD_LIBRARY_PATH="${stage}/libs" ldd "${lib}" | grep -q "not found" && { log "${lib##*/}: unresolved dependencies"; exit 1; }
done
strip --strip-unneeded "${stage}"/libs/* 2> /dev/null || true
XZ_OPT="${XZ_OPT:--6 -T0}" tar -C "${stage}/libs" -cJf "${bundle}/libs.tar.xz" .
log "carried $(ls "${stage}/libs" | wc -l) libraries: $(du -sh "${stage}/libs" | cut -f1) as files," \
  "$(du -sh "${bundle}/libs.tar.xz" | cut -f1) packed"

# ---- the CUDA libraries run.sh must find on the target
{
  echo "# soname kind: linked (DT_NEEDED of a binary), dlopen (loaded by cuDNN / cudart), optional, driver"
  for name in $(printf '%s\n' "${!cuda_needed[@]}" | sort); do echo "${name} linked"; done
  cudnn_dir="$(dirname "$(readlink -f "${cuda_needed[libcudnn.so.9]:-/nonexistent}")" 2> /dev/null || true)"
  for lib in "${cudnn_dir}"/libcudnn_*.so.[0-9]; do
    [[ -e "${lib}" ]] && echo "${lib##*/} dlopen"
  done
  cudart_major="$(printf '%s\n' "${!cuda_needed[@]}" | sed -n 's/^libcudart\.so\.\([0-9]*\)$/\1/p')"
  if [[ -n "${cudart_major}" ]]; then
    echo "libnvrtc.so.${cudart_major} optional"
    echo "libnvJitLink.so.${cudart_major} optional"
  fi
  echo "libcuda.so.1 driver"
} > "${bundle}/cuda-sonames.txt"

# ---- scripts, data, run.sh, description
for script in compare_steps.py bench_step_torch.py bench_common.py; do
  cp "${repo}/tests/bench/${script}" "${bundle}/scripts/"
done
cp "${repo}/tests/gpu/make_synthetic_idx.py" "${bundle}/scripts/"
if ! "${python}" "${repo}/tests/gpu/make_synthetic_idx.py" "${bundle}/data"; then
  log "could not write the synthetic IDX set with ${python} (needs numpy; set PYTHON)"; exit 1
fi
cp "${repo}/tests/gpu/bundle-run.sh" "${bundle}/run.sh"
chmod +x "${bundle}/run.sh"

max_symbol() {  # the newest versioned symbol ($1: GLIBC or GLIBCXX) the carried files need
  { objdump -T "${bundle}"/bin/* "${stage}"/libs/* 2> /dev/null || true; } |
    grep -o "${1}_[0-9.]*" | sort -Vu | tail -n 1
}
cuda_version="$(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
cudnn_header="$(sed -n 's/^CUDNN_INCLUDE_DIR:[A-Z]*=//p' "${build_dir}/CMakeCache.txt")/cudnn_version.h"
cudnn_version="$(awk '/^#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) / {v = v (v == "" ? "" : ".") $3} END {print v}' "${cudnn_header}" 2> /dev/null)"
{
  echo "commit: $(git -C "${repo}" rev-parse --short HEAD 2> /dev/null || echo unknown)$(git -C "${repo}" diff --quiet HEAD 2> /dev/null || echo ' (with uncommitted changes)')"
  echo "built: $(date -u +%FT%TZ)"
  echo "cuda architectures: ${archs}"
  echo "built with: CUDA ${cuda_version}, cuDNN ${cudnn_version:-?}, $(c++ --version | head -n 1)"
  echo "needs at least: $(max_symbol GLIBC) and $(max_symbol GLIBCXX) (libstdc++); CUDA sonames in cuda-sonames.txt"
} > "${bundle}/BUNDLE.txt"

# ---- into place
rm -rf "${dest}"
mkdir -p "$(dirname "${dest}")"
cp -a "${bundle}" "${dest}"
dest="$(cd "${dest}" && pwd)"
size_kib="$(du -sk "${dest}" | cut -f1)"
tree_kib=0
if git -C "${repo}" rev-parse --git-dir > /dev/null 2>&1; then
  tree_kib="$(cd "${repo}" && git ls-files -z | xargs -0 -r du -ckL 2> /dev/null | awk '$2 == "total" {k += $1} END {print k + 0}')"
fi
log "bundle ${dest}: $(awk -v k="${size_kib}" 'BEGIN {printf "%.1f MiB", k / 1024}')" \
  "(bin $(du -sh "${dest}/bin" | cut -f1), libs.tar.xz $(du -sh "${dest}/libs.tar.xz" | cut -f1)," \
  "data $(du -sh "${dest}/data" | cut -f1)); the repository's tracked files: $((tree_kib / 1024)) MiB"
echo "bundle size: $(awk -v k="${size_kib}" 'BEGIN {printf "%.1f", k / 1024}') MiB (${dest})"
if ((size_kib > max_mib * 1024)); then
  log "the bundle is larger than ${max_mib} MiB: it would not leave room in a 64 MiB device call"
  exit 1
fi
