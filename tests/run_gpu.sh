#!/usr/bin/env bash
# Builds the engine with the CUDA backend and runs the GPU tests (ctest -L gpu), in one call on a
# GPU machine. It configures MD_ENGINE_ONLY=ON, so the machine needs only a C++20 compiler,
# CMake >= 3.24, the CUDA toolkit (nvcc, cudart, cuBLAS), cuDNN, OpenBLAS (the CPU backend is
# the reference the GPU is compared with) and OpenMP: no MPI, HDF5, Boost, yaml-cpp or NCCL.
# GoogleTest: an installed one (Debian's libgtest-dev, or GTEST_ROOT=<prefix>), else its
# sources (Debian's googletest package, /usr/src/googletest, or MD_GTEST_SOURCE_DIR=<dir>),
# built here; there is no network access, so nothing is downloaded.
#
# Environment:
#   OUT            where the logs go (default ./gpu-results): nvidia-smi.txt, configure.log,
#                  build.log, ctest.log, summary.txt
#   BUILD_DIR      build directory (default build-gpu in the repository)
#   MD_CUDA_ARCHS  CUDA architectures (default: those of the visible GPUs, else "80;90")
#   JOBS           build jobs (default: all cores)
# Then, when a carried CUDA build of metadistill is present (build/metadistill and
# build/carried-libs, see tests/bench/run_gpu_bench.sh), it runs the whole-step benchmarks beside
# PyTorch in the time left of a 10-minute call (results in $OUT/bench; MD_GPU_BENCH=off skips).
# Exit status: 0 when every GPU test passed; 1 on a build or test failure, or when a GPU is
# visible but tests were skipped (skipped is never passed); 2 when a requirement is missing.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${OUT:-./gpu-results}"
build_dir="${BUILD_DIR:-${repo}/build-gpu}"
jobs="${JOBS:-$(nproc)}"
mkdir -p "${out}"
out="$(cd "${out}" && pwd)"

log() { echo "[run_gpu] $*" | tee -a "${out}/summary.txt"; }
: > "${out}/summary.txt"

# ---- requirements
if [[ -z "${CUDACXX:-}" ]] && ! command -v nvcc > /dev/null; then
  if [[ -x /usr/local/cuda/bin/nvcc ]]; then
    export CUDACXX=/usr/local/cuda/bin/nvcc
  else
    log "nvcc not found: put the CUDA toolkit's bin on PATH or set CUDACXX"
    exit 2
  fi
fi
if ! command -v cmake > /dev/null; then
  log "cmake not found (3.24 or newer is needed)"
  exit 2
fi

gpu_visible=0
if command -v nvidia-smi > /dev/null && nvidia-smi -L > "${out}/nvidia-smi.txt" 2>&1; then
  gpu_visible=1
  nvidia-smi >> "${out}/nvidia-smi.txt" 2>&1 || true
  log "GPUs: $(grep -c '^GPU' "${out}/nvidia-smi.txt") visible"
else
  log "no GPU visible to nvidia-smi: the GPU tests will report SKIPPED"
fi

if [[ -z "${MD_CUDA_ARCHS:-}" ]]; then
  MD_CUDA_ARCHS="80;90"
  if [[ "${gpu_visible}" == 1 ]]; then
    capabilities="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2> /dev/null |
      tr -d ' .' | sort -u | paste -sd ';' || true)"
    if [[ -n "${capabilities}" ]]; then MD_CUDA_ARCHS="${capabilities}"; fi
  fi
fi
log "CUDA architectures: ${MD_CUDA_ARCHS}"

# ---- configure and build only the engine and the GPU test binary
log "configuring ${build_dir} (log: ${out}/configure.log)"
if ! cmake -S "${repo}" -B "${build_dir}" -DCMAKE_BUILD_TYPE=Release -DMD_ENGINE_ONLY=ON \
    -DMD_CUDA=ON "-DMD_CUDA_ARCHS=${MD_CUDA_ARCHS}" -DMD_BUILD_TESTS=ON -DMD_BUILD_BENCH=OFF \
    > "${out}/configure.log" 2>&1; then
  log "configure failed; the end of configure.log:"
  tail -n 30 "${out}/configure.log" | tee -a "${out}/summary.txt"
  exit 1
fi

log "building test_gpu with ${jobs} jobs (log: ${out}/build.log)"
if ! cmake --build "${build_dir}" --target test_gpu -j "${jobs}" > "${out}/build.log" 2>&1; then
  log "build failed; the end of build.log:"
  tail -n 40 "${out}/build.log" | tee -a "${out}/summary.txt"
  exit 1
fi

# ---- run
log "running ctest -L gpu (log: ${out}/ctest.log)"
status=0
(cd "${build_dir}" && ctest -L gpu --output-on-failure) > "${out}/ctest.log" 2>&1 || status=$?
grep -E "tests passed|tests failed|\*\*\*(Failed|Exception|Timeout)" "${out}/ctest.log" |
  tee -a "${out}/summary.txt" || true

skipped="$(grep -c '(Skipped)' "${out}/ctest.log" || true)"
result=0
if [[ "${status}" != 0 ]]; then
  log "FAILED: some GPU tests failed (see ctest.log)"
  result=1
elif [[ "${gpu_visible}" == 1 && "${skipped}" != 0 ]]; then
  log "FAILED: a GPU is visible but ${skipped} tests were skipped (does the process see it?)"
  result=1
elif [[ "${gpu_visible}" == 0 ]]; then
  log "done: no GPU, ${skipped} tests skipped (nothing on the GPU was checked)"
else
  log "done: all GPU tests passed"
fi

# ---- whole-step benchmarks beside PyTorch, when a carried CUDA build of metadistill is here
# (tests/bench/run_gpu_bench.sh says how to build and carry it), in what is left of a 10-minute
# call. MD_GPU_BENCH=off skips them.
bench_binary="${MD_BENCH_BINARY:-${repo}/build/metadistill}"
if [[ "${gpu_visible}" == 1 && "${MD_GPU_BENCH:-auto}" != off && -x "${bench_binary}" ]]; then
  left=$((570 - SECONDS))
  if ((left < 90)); then
    log "benchmarks skipped: only ${left} s left of the call; run tests/bench/run_gpu_bench.sh in a call of its own"
  else
    log "running the step benchmarks (${left} s budget; results in ${out}/bench)"
    bench_status=0
    OUT="${out}/bench" BENCH_TIMEOUT="$((left - 30))" bash "${repo}/tests/bench/run_gpu_bench.sh" || bench_status=$?
    log "step benchmarks exited with status ${bench_status} (see bench/summary.txt, bench/compare.md)"
    ((bench_status == 0)) || result=1
  fi
fi
exit "${result}"
