#!/usr/bin/env bash
# Copies the shared libraries a binary needs, except those every Linux or CUDA machine brings,
# into one folder, so that the binary runs on a machine without them (a GPU machine without
# MPI, HDF5, Boost or yaml-cpp: tests/bench/run_gpu_bench.sh runs it with LD_LIBRARY_PATH set
# to that folder). Left out: the C runtime (glibc's libraries and the loader, libstdc++,
# libgcc_s) and the CUDA libraries (driver, runtime, cuDNN, cuBLAS, NCCL, ...), which must come
# from the target machine's own CUDA toolkit or PyTorch wheels. Each library is copied under
# the name ldd asks for (its soname), links resolved, into DEST_DIR/libs.tar.xz (the libraries
# are about 63 MiB as files, 13 MiB packed: the device tool carries at most 64 MiB), with their
# names in DEST_DIR/MANIFEST.txt. Unpack with: tar -C SOMEWHERE -xJf DEST_DIR/libs.tar.xz
#
# Usage: tools/carry-libs.sh BINARY DEST_DIR
# Prints one line per library and the archive's size. Exit status: 0; 1 when a library the
# binary needs is not found here (ldd says "not found"); 2 on bad arguments.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 BINARY DEST_DIR" >&2
  exit 2
fi
binary="$1"
dest="$2"
if [[ ! -x "${binary}" ]]; then
  echo "carry-libs: ${binary} is not an executable file" >&2
  exit 2
fi

# Sonames never carried (patterns for bash's [[ == ]]).
system_patterns=(
  'linux-vdso.so*' 'ld-linux*.so*' 'libc.so*' 'libm.so*' 'libpthread.so*' 'libdl.so*'
  'librt.so*' 'libresolv.so*' 'libutil.so*' 'libstdc++.so*' 'libgcc_s.so*'
  'libcuda.so*' 'libcudart.so*' 'libcudnn*.so*' 'libcublas*.so*' 'libnccl.so*' 'libnvrtc*.so*'
  'libnvJitLink.so*' 'libcufft*.so*' 'libcurand.so*' 'libcusolver*.so*' 'libcusparse*.so*'
  'libnvidia-*.so*'
)
is_system() {
  local name="$1" pattern
  for pattern in "${system_patterns[@]}"; do
    # shellcheck disable=SC2053  # the pattern is meant to glob
    if [[ "${name}" == ${pattern} ]]; then return 0; fi
  done
  return 1
}

listing="$(ldd "${binary}")"
if grep -q "not found" <<< "${listing}"; then
  echo "carry-libs: ldd cannot resolve every library of ${binary} here:" >&2
  grep "not found" <<< "${listing}" >&2
  exit 1
fi

staging="$(mktemp -d)"
trap 'rm -rf "${staging}"' EXIT
while read -r name arrow path _; do
  [[ "${arrow}" == "=>" && -n "${path}" && -e "${path}" ]] || continue
  if is_system "${name}"; then continue; fi
  cp -L "${path}" "${staging}/${name}"
  echo "carried ${name} ($(du -k "${staging}/${name}" | cut -f1) KiB) from ${path}"
done <<< "${listing}"

rm -rf "${dest}"
mkdir -p "${dest}"
(cd "${staging}" && ls -1) > "${dest}/MANIFEST.txt"
XZ_OPT="${XZ_OPT:--6 -T0}" tar -C "${staging}" -cJf "${dest}/libs.tar.xz" .
echo "carry-libs: $(wc -l < "${dest}/MANIFEST.txt") libraries, $(du -sh "${staging}" | cut -f1) as files," \
  "$(du -sh "${dest}/libs.tar.xz" | cut -f1) packed in ${dest}/libs.tar.xz"
