#!/usr/bin/env bash
# Rehearses a GPU machine's first call here (issue 15): runs a bundle (tests/gpu/bundle.sh) in a
# sandbox where this machine's libraries are hidden. The sandbox has only glibc, libstdc++ and
# libgcc_s (and the loader) on the default library path, the bundle at /bundle, the CUDA
# libraries laid out as PyTorch's wheels lay them out
# (/opt/py/site-packages/nvidia/{cu13,cudnn,nccl}/lib/lib*.so.N, bound from /usr/local/cuda; no
# CUDA toolkit folder, no libcuda.so.1, no GPU), a python3 whose sys.path holds that
# site-packages, and the shell tools a script needs (bash, coreutils, grep, sed, awk, tar, xz,
# ...) whose own libraries sit in /opt/host/lib, reachable only through those tools' RPATH: a
# library the bundle forgot to carry is not found, and is named.
# In the sandbox: run.sh --print-env resolves every library; test_gpu starts, lists its tests and
# reports them skipped; `metadistill --help` and a 3-step CPU trial run; `run.sh --budget-s 60`
# goes through every step and writes a summary.json that says no GPU.
#
# Usage: tests/gpu/rehearse.sh [--bundle DIR]   (default: build one with bundle.sh into
#        $BUILD_DIR/rehearsal-bundle; BUILD_DIR defaults to build-bundle in the repository)
# Environment: MD_REHEARSE_MODE=bwrap|chroot (default bwrap, chroot when bwrap cannot run here);
#              REHEARSE_OUT (default $BUILD_DIR/rehearsal): the sandbox's results.
# Exit status: 0 every check passed; 1 a check failed (each is printed, FAIL lines); 2 setup.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build_dir="${BUILD_DIR:-${repo}/build-bundle}"
bundle=""
while (($#)); do
  case "$1" in
    --bundle) bundle="${2:?--bundle needs a folder}"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' | head -n -1; exit 0 ;;
    *) echo "rehearse.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
log() { echo "[rehearse] $*" >&2; }

if [[ -z "${bundle}" ]]; then
  bundle="${build_dir}/rehearsal-bundle"
  BUILD_DIR="${build_dir}" bash "${repo}/tests/gpu/bundle.sh" "${bundle}"
fi
bundle="$(cd "${bundle}" && pwd)"
[[ -x "${bundle}/run.sh" && -f "${bundle}/cuda-sonames.txt" ]] || { log "${bundle} is not a bundle"; exit 2; }
results="${REHEARSE_OUT:-${build_dir}/rehearsal}"
rm -rf "${results}"
mkdir -p "${results}"
results="$(cd "${results}" && pwd)"
cuda_lib="${MD_REHEARSE_CUDA_LIB:-/usr/local/cuda/lib64}"

tmp="$(mktemp -d)"
cleanup() { chmod -R u+w "${tmp}" 2> /dev/null; rm -rf "${tmp}"; }
trap cleanup EXIT
root="${tmp}/root"
mkdir -p "${root}/usr/bin" "${root}/usr/lib/x86_64-linux-gnu" "${root}/usr/lib64" "${root}/opt/host/lib" \
  "${root}/opt/py/site-packages" "${root}/bundle" "${root}/out" "${root}/tmp" "${root}/etc" "${root}/proc" "${root}/dev"
for link in bin sbin; do ln -s usr/bin "${root}/${link}"; done
ln -s usr/lib "${root}/lib"
ln -s usr/lib64 "${root}/lib64"

# ---- glibc, libstdc++, libgcc_s: the only libraries on the default path
mapfile -t runtime_files < <(dpkg -L libc6 libstdc++6 libgcc-s1 2> /dev/null |
  grep -E '^(/usr)?/lib(64)?/(x86_64-linux-gnu/)?[^/]*\.so[.0-9]*$' | sort -u)
((${#runtime_files[@]} > 5)) || { log "cannot list glibc's files with dpkg"; exit 2; }
for file in "${runtime_files[@]}"; do
  [[ -e "${file}" || -L "${file}" ]] || continue
  target="${root}/usr${file#/usr}"
  mkdir -p "$(dirname "${target}")"
  cp -a "${file}" "${target}"
done
is_runtime() {
  case "$1" in
    linux-vdso.so* | ld-linux*.so* | libc.so.* | libm.so.* | libmvec.so.* | libpthread.so.* | libdl.so.* | \
      librt.so.* | libresolv.so.* | libutil.so.* | libanl.so.* | libnsl.so.* | libBrokenLocale.so.* | \
      libstdc++.so.* | libgcc_s.so.*) return 0 ;;
  esac
  return 1
}
host_libs_of() {  # copies the non-runtime libraries of ELF file $1 into /opt/host/lib
  local name arrow path
  while read -r name arrow path _; do
    [[ "${arrow}" == "=>" && -e "${path}" ]] || continue
    is_runtime "${name}" && continue
    [[ -e "${root}/opt/host/lib/${name}" ]] || cp -L "${path}" "${root}/opt/host/lib/${name}"
  done < <(ldd "$1" 2> /dev/null || true)
}

# ---- the shell tools, with their libraries behind their own RPATH
tools=(bash sh env timeout date mkdir rm rmdir cp mv cat ls ln head tail wc sort uniq tr cut paste
  basename dirname readlink realpath tee sleep du stat seq printf echo id uname nproc mktemp touch
  chmod true false test expr sed grep awk tar xz gzip find xargs ldd getconf od tac comm)
for tool in "${tools[@]}"; do
  path="$(type -P "${tool}" 2> /dev/null || true)"
  [[ -n "${path}" && "${path}" == /* ]] || { log "tool ${tool} not found here"; exit 2; }
  path="$(readlink -f "${path}")"
  cp "${path}" "${root}/usr/bin/${tool}"
  if head -c 4 "${path}" | grep -q ELF; then
    patchelf --force-rpath --set-rpath /opt/host/lib "${root}/usr/bin/${tool}"
    host_libs_of "${path}"
  fi
done
# python3 with its standard library (for run.sh's wheel search; no numpy, no torch)
python_real="$(readlink -f /usr/bin/python3)"
python_lib="/usr/lib/$(basename "${python_real}")"
cp "${python_real}" "${root}/usr/bin/python3"
patchelf --force-rpath --set-rpath /opt/host/lib "${root}/usr/bin/python3"
host_libs_of "${python_real}"
for module in "${python_lib}"/lib-dynload/*.so; do host_libs_of "${module}"; done
mkdir -p "${root}${python_lib}"
if ! command -v patchelf > /dev/null; then log "patchelf is needed (apt-get install patchelf)"; exit 2; fi

# ---- CUDA libraries laid out as PyTorch's wheels lay them out (bound from the toolkit here)
# CUDA 13's wheels (PyTorch cu130) put cudart, cuBLAS, NVRTC and nvJitLink together in
# nvidia/cu13/lib; cuDNN and NCCL keep nvidia/cudnn/lib and nvidia/nccl/lib. (CUDA 12's had one
# folder each: nvidia/cuda_runtime/lib, nvidia/cublas/lib, ...; run.sh globs nvidia/*/lib.)
wheel_of() {
  local major
  case "$1" in
    libcudart.so.* | libcublas*.so.* | libnvrtc*.so.* | libnvJitLink.so.*)
      major="${1##*.so.}"; major="${major%%.*}"; echo "cu${major}" ;;
    libcudnn*.so.*) echo cudnn ;; libnccl.so.*) echo nccl ;;
    *) echo "" ;;
  esac
}
cuda_binds=()
while read -r soname kind; do
  [[ -z "${soname}" || "${soname}" == \#* || "${kind}" == driver ]] && continue
  wheel="$(wheel_of "${soname}")"
  [[ -n "${wheel}" ]] || continue
  names=("${soname}")
  [[ "${soname}" == libnvrtc.so.* ]] && names+=($(cd "${cuda_lib}" && ls libnvrtc-builtins.so.[0-9]*.[0-9] 2> /dev/null | grep -v alt || true))
  for name in "${names[@]}"; do
    if [[ ! -e "${cuda_lib}/${name}" ]]; then
      [[ "${kind}" == optional ]] && continue
      log "${name} is not in ${cuda_lib}: cannot lay out the wheels"; exit 2
    fi
    mkdir -p "${root}/opt/py/site-packages/nvidia/${wheel}/lib"
    : > "${root}/opt/py/site-packages/nvidia/${wheel}/lib/${name}"
    cuda_binds+=(--ro-bind "$(readlink -f "${cuda_lib}/${name}")" "/opt/py/site-packages/nvidia/${wheel}/lib/${name}")
  done
done < "${bundle}/cuda-sonames.txt"

# ---- what runs inside
cat > "${root}/inside.sh" << 'EOF'
#!/bin/bash
# Runs in the sandbox: the rehearsal's checks, one PASS/FAIL line each.
set -uo pipefail
failed=0
check() { local what="$1"; shift; if "$@"; then echo "PASS: ${what}"; else echo "FAIL: ${what}"; failed=1; fi; }
echo "sandbox: $(ls /usr/lib/x86_64-linux-gnu | wc -l) files on the default library path; python: $(python3 -c 'import sys; print(sys.version.split()[0], [p for p in sys.path if "site-packages" in p])' 2>&1)"
check "this machine's libraries are hidden (no libopenblas/libhdf5/libmpi on the default path)" \
  bash -c '! ls /usr/lib/x86_64-linux-gnu/ | grep -qE "openblas|hdf5|libmpi|yaml|boost|gomp|gfortran"'
check "no CUDA toolkit folder and no driver in the sandbox" bash -c '! ls /usr/local/cuda > /dev/null 2>&1 && ! ls /dev/nvidia0 > /dev/null 2>&1'

env_line="$(/bundle/run.sh --print-env 2> /out/print-env.log)"
check "run.sh --print-env resolves every library (print-env.log)" test -n "${env_line}"
grep -E 'NOT FOUND|not found' /out/print-env.log | sed 's/^/  library check: /'
eval "${env_line}"
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"

/bundle/bin/test_gpu --gtest_list_tests > /out/test_gpu-list.txt 2>&1
check "test_gpu starts and lists its tests ($(grep -c '^  ' /out/test_gpu-list.txt) tests)" grep -q '^  ' /out/test_gpu-list.txt
/bundle/bin/test_gpu --gtest_output=xml:/out/test_gpu.xml > /out/test_gpu.log 2>&1
rc=$?
skipped="$(grep -c 'result="skipped"' /out/test_gpu.xml 2> /dev/null)"
total="$(grep -c '<testcase ' /out/test_gpu.xml 2> /dev/null)"
echo "test_gpu: exit ${rc}, ${total:-0} tests, ${skipped:-0} skipped; $(grep -E '^\[  (PASSED|FAILED|SKIPPED) +\] [0-9]+ test' /out/test_gpu.log | paste -sd ';')"
check "test_gpu runs without a GPU and reports its tests skipped" bash -c "[[ ${rc} == 0 && ${skipped:-0} -gt 0 ]]"

/bundle/bin/metadistill --help > /out/help.txt 2>&1
check "metadistill --help" bash -c "[[ $? == 0 ]] && grep -q train /out/help.txt"

mkdir -p /tmp/cpu && cd /tmp/cpu
cat > trial.yaml << YAML
dataset: {name: idx, root: /bundle/data}
model: {arch: resnet20, num_classes: 10}
optim: {epochs: 1, batch_size: 16, lr: 0.05}
runtime: {device: cpu, threads: 2, max_train_batches: 3, max_eval_batches: 1}
YAML
/bundle/bin/metadistill train --config trial.yaml --out /tmp/cpu/out --progress lines > /out/cpu-trial.log 2>&1
rc=$?
check "a 3-step CPU trial (cpu-trial.log)" bash -c "[[ ${rc} == 0 ]] && grep -q complete /out/cpu-trial.log"

OUT=/out/run /bundle/run.sh --budget-s 60 > /out/run.log 2>&1
rc=$?
echo "run.sh --budget-s 60: exit ${rc}"
sed -n 's/^\[run.sh\] /  /p' /out/run.log
check "run.sh wrote summary.json" test -s /out/run/summary.json
check "summary.json says no GPU" grep -q '"gpu_visible": false' /out/run/summary.json
check "summary.json result is no_gpu and run.sh exited 2" bash -c "grep -q '\"result\": \"no_gpu\"' /out/run/summary.json && [[ ${rc} == 2 ]]"
for step in libs env tests trials dp bench; do
  check "run.sh went through step ${step}" grep -q "\"name\": \"${step}\"" /out/run/summary.json
done
check "9 trials completed on the CPU" bash -c "[[ \$(grep -o '\"status\": \"complete\"' /out/run/summary.json | wc -l) == 9 ]]"
if python3 -c 'import json; json.load(open("/out/run/summary.json"))' 2> /dev/null; then echo "PASS: summary.json parses as JSON"; else echo "FAIL: summary.json parses as JSON"; failed=1; fi
exit "${failed}"
EOF
chmod +x "${root}/inside.sh"

# ---- run it
mode="${MD_REHEARSE_MODE:-bwrap}"
if [[ "${mode}" == bwrap ]] && ! { command -v bwrap > /dev/null &&
    bwrap --unshare-all --ro-bind / / --proc /proc --dev /dev /bin/true 2> /dev/null; }; then
  log "bwrap cannot run here (install bubblewrap, or it needs user namespaces): using a chroot"
  mode=chroot
fi
status=0
if [[ "${mode}" == bwrap ]]; then
  log "sandbox: bubblewrap"
  bwrap --unshare-all --die-with-parent --clearenv \
    --setenv PATH /usr/bin --setenv HOME /tmp --setenv PYTHONPATH /opt/py/site-packages --setenv LANG C.UTF-8 \
    --ro-bind "${root}/usr" /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 \
    --symlink usr/bin /bin --symlink usr/bin /sbin \
    --ro-bind "${root}/opt" /opt --ro-bind "${python_lib}" "${python_lib}" \
    "${cuda_binds[@]}" \
    --ro-bind "${bundle}" /bundle --bind "${results}" /out --ro-bind "${root}/inside.sh" /inside.sh \
    --proc /proc --dev /dev --tmpfs /tmp --dir /etc \
    /bin/bash /inside.sh 2>&1 | tee "${results}/rehearsal.log" || status=$?
else
  log "sandbox: chroot of copies (${tmp}/root)"
  [[ "$(id -u)" == 0 ]] || { log "a chroot needs root"; exit 2; }
  cp -a "${python_lib}/." "${root}${python_lib}/"
  cp -a "${bundle}/." "${root}/bundle/"
  for ((i = 0; i < ${#cuda_binds[@]}; i += 3)); do
    ln -f "${cuda_binds[i + 1]}" "${root}${cuda_binds[i + 2]}" 2> /dev/null || cp -fL "${cuda_binds[i + 1]}" "${root}${cuda_binds[i + 2]}"
  done
  mkdir -p "${root}/dev" && for node in null zero urandom random; do cp -a "/dev/${node}" "${root}/dev/" 2> /dev/null || true; done
  ln -sfn /proc/self/fd "${root}/dev/fd"
  for i in 0 1 2; do ln -sfn "/proc/self/fd/${i}" "${root}/dev/$(echo stdin stdout stderr | cut -d' ' -f$((i + 1)))"; done
  mount -t proc proc "${root}/proc" 2> /dev/null || log "cannot mount /proc in the chroot (some checks may fail)"
  env -i PATH=/usr/bin HOME=/tmp PYTHONPATH=/opt/py/site-packages LANG=C.UTF-8 \
    "$(type -P chroot || echo /usr/sbin/chroot)" "${root}" /bin/bash /inside.sh 2>&1 | tee "${results}/rehearsal.log" || status=$?
  umount "${root}/proc" 2> /dev/null || true
  cp -a "${root}/out/." "${results}/"
fi
fails="$(grep -c '^FAIL' "${results}/rehearsal.log" || true)"
passes="$(grep -c '^PASS' "${results}/rehearsal.log" || true)"
if ((status != 0 || fails > 0 || passes == 0)); then
  log "FAILED (${mode}): ${fails} check(s) failed, exit ${status}; results in ${results}"
  exit 1
fi
log "passed (${mode}): ${passes} checks; results in ${results}"
