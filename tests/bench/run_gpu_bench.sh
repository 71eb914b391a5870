#!/usr/bin/env bash
# Whole-step benchmarks on a GPU machine, ours beside PyTorch (DESIGN.md section 9), in one call:
# checks that the carried `metadistill` finds all its libraries, then runs
# five short real trials on a synthetic IDX set (baseline fp32, byot tf32 deterministic,
# metadistiller bf16 and fp32, byot tf32 with runtime.cuda_graph: the CUDA trainer end to end,
# each must finish and learn), then
# tests/bench/compare_steps.py --device cuda (ours fp32 / tf32 / bf16 against PyTorch eager
# fp32, tf32 and bf16 channels_last, tf32 NCHW, and torch.compile; ours tf32 and bf16 also with
# --cuda-graph) and writes to $OUT:
#   nvidia-smi.txt  summary.txt  ldd.txt  trial-*.log/.csv  compare.md (the tables)  raw.json
#   compare.log
# The GPU machine may lack MPI, HDF5, Boost and yaml-cpp, which metadistill links, and has no
# network: the binary is built here (with CUDA) and travels with its libraries, packed by
# tools/carry-libs.sh. The CUDA libraries (cudart, cuBLAS, cuDNN, NCCL) are not carried: they
# are looked up on the GPU machine in its CUDA toolkit (/usr/local/cuda*) and in the nvidia/*
# and torch/lib folders of the Python that has PyTorch.
#
# How the lead calls it through the device tool:
#   here:   tools/build.sh                      # CUDA build into build/ (nvcc under /usr/local/cuda)
#           tools/carry-libs.sh build/metadistill build/carried-libs
#           du -sh build/metadistill build/carried-libs   # ~3.4 MiB + ~13 MiB; the tool's limit is 64 MiB
#   device: run(command="tests/bench/run_gpu_bench.sh",
#               carry=["build/metadistill", "build/carried-libs"], timeout_s=600)
#   (the machine's plain python3 holds PyTorch; set MD_PYTHON otherwise)
#
# Environment:
#   OUT              where the results go (default ./gpu-bench-results)
#   MD_BENCH_BINARY  the metadistill to run (default build/metadistill in the repository)
#   MD_CARRIED_LIBS  tools/carry-libs.sh's folder (default build/carried-libs); when it is
#                    absent the binary must find its libraries on the machine
#   MD_PYTHON        Python with PyTorch and CUDA (default python3)
#   ARCHS, METHODS   configs (default resnet18_cifar; baseline,byot,metadistiller)
#   COMPILE_METHODS  methods that get a torch.compile twin (default baseline)
#   BATCH, STEPS, WARMUP, ROUNDS   (default 128, 30, 5, 2)
#   BENCH_TIMEOUT    seconds for the trials and the comparison (default 500, inside the
#                    tool's 600)
#   MD_GPU_TRIALS    off: skip the short trials
#   NVIDIA_SMI       the nvidia-smi to ask (default nvidia-smi)
# Exit status: 0 the comparison ran; 1 a run failed or timed out; 2 a requirement is missing
# (no GPU, no binary, a library that cannot be found, no PyTorch with CUDA).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${OUT:-./gpu-bench-results}"
binary="${MD_BENCH_BINARY:-${repo}/build/metadistill}"
carried="${MD_CARRIED_LIBS:-${repo}/build/carried-libs}"
python="${MD_PYTHON:-python3}"
nvidia_smi="${NVIDIA_SMI:-nvidia-smi}"
mkdir -p "${out}"
out="$(cd "${out}" && pwd)"
: > "${out}/summary.txt"
log() { echo "[run_gpu_bench] $*" | tee -a "${out}/summary.txt"; }
missing() {
  log "MISSING: $*"
  exit 2
}

# ---- the GPU
if ! command -v "${nvidia_smi}" > /dev/null || ! "${nvidia_smi}" -L > "${out}/nvidia-smi.txt" 2>&1; then
  missing "no GPU visible to ${nvidia_smi} (see nvidia-smi.txt): this script needs a GPU machine"
fi
"${nvidia_smi}" >> "${out}/nvidia-smi.txt" 2>&1 || true
log "GPU: $(grep -m1 '^GPU' "${out}/nvidia-smi.txt")"

# ---- the binary and its libraries
if [[ ! -x "${binary}" ]]; then
  missing "${binary} is not an executable: build it with CUDA here (tools/build.sh) and carry it"
fi
work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
library_path=""
if [[ -f "${carried}/libs.tar.xz" ]]; then
  mkdir -p "${work}/libs"
  tar -C "${work}/libs" -xJf "${carried}/libs.tar.xz"
  library_path="${work}/libs"
  log "carried libraries: $(ls "${work}/libs" | wc -l) from ${carried}/libs.tar.xz"
else
  log "no ${carried}/libs.tar.xz: the binary must find every library on this machine"
fi

# Folders where this machine keeps CUDA libraries: its toolkit, and the Python's wheels.
candidate_dirs() {
  local root
  for root in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/*/lib \
      /usr/local/cuda-*/lib64 /usr/local/cuda-*/targets/*/lib; do
    [[ -d "${root}" ]] && echo "${root}"
  done
  "${python}" - << 'EOF' 2> /dev/null || true
import glob, os, site, sys
roots = site.getsitepackages() + [site.getusersitepackages()]
for root in roots:
    for lib in sorted(glob.glob(os.path.join(root, "nvidia", "**", "lib"), recursive=True)):
        print(lib)
    if os.path.isdir(os.path.join(root, "torch", "lib")):
        print(os.path.join(root, "torch", "lib"))
EOF
}

unresolved() { LD_LIBRARY_PATH="${library_path}" ldd "${binary}" | awk '/not found/ {print $1}'; }
mapfile -t candidates < <(candidate_dirs)
for soname in $(unresolved); do
  for dir in "${candidates[@]}"; do
    if [[ -e "${dir}/${soname}" ]]; then
      library_path="${library_path:+${library_path}:}${dir}"
      log "found ${soname} in ${dir}"
      break
    fi
  done
done
LD_LIBRARY_PATH="${library_path}" ldd "${binary}" > "${out}/ldd.txt" 2>&1 || true
still_missing="$(unresolved | paste -sd ' ' || true)"
if [[ -n "${still_missing}" ]]; then
  missing "libraries not found for ${binary}: ${still_missing} (searched the carried folder and: ${candidates[*]:-nothing})"
fi
export LD_LIBRARY_PATH="${library_path}${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}"

# ---- PyTorch
if ! torch_info="$("${python}" -c 'import torch; assert torch.cuda.is_available(), "no CUDA"; print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version())' 2>&1)"; then
  missing "${python} has no PyTorch that sees the GPU: ${torch_info##*$'\n'}"
fi
log "PyTorch (version, CUDA, cuDNN): ${torch_info}"

# ---- a first step of ours on the GPU, so that a broken binary fails here, clearly
if ! first="$("${binary}" bench --device cuda --arch resnet20 --batch 8 --steps 1 --warmup 0 --json 2>&1)"; then
  log "FAILED: metadistill bench on the GPU: ${first}"
  exit 1
fi
log "first step: ${first}"

# ---- short real trials on the GPU: the CUDA trainer end to end (the resident set and the
# augmentation kernel, each precision, all three methods, deterministic algorithms) on the
# synthetic IDX set of tests/gpu/make_synthetic_idx.py, which 60 steps learn well above chance
# (0.1). MD_GPU_TRIALS=off skips them.
if [[ "${MD_GPU_TRIALS:-on}" != off ]]; then
  trials="${work}/trials"
  "${python}" "${repo}/tests/gpu/make_synthetic_idx.py" "${trials}/data"
  trial_failed=0
  for spec in "baseline fp32 false false" "byot tf32 true false" "metadistiller bf16 false false" \
      "metadistiller fp32 true false" "byot tf32 true true"; do
    read -r method precision deterministic cuda_graph <<< "${spec}"
    name="${method}-${precision}"
    if [[ "${cuda_graph}" == true ]]; then name="${name}-cuda_graph"; fi
    {
      echo "dataset: {name: idx, root: ${trials}/data}"
      echo "model: {arch: resnet20}"
      echo "method: {name: ${method}, meta: {generator_width: 32}}"
      echo "optim: {epochs: 1, batch_size: 100, lr: 0.05, schedule: {name: cosine}}"
      echo "runtime: {device: cuda, precision: ${precision}, deterministic: ${deterministic},"
      echo "          cuda_graph: ${cuda_graph},"
      echo "          log_every: 20, max_train_batches: 60, max_eval_batches: 10}"
    } > "${trials}/${name}.yaml"
    if ! timeout 180 "${binary}" train --config "${trials}/${name}.yaml" \
        --out "${trials}/${name}" > "${out}/trial-${name}.log" 2>&1; then
      log "FAILED: the ${name} trial on the GPU (see trial-${name}.log)"
      trial_failed=1
      continue
    fi
    "${binary}" report "${trials}/${name}" --format csv > "${out}/trial-${name}.csv" 2>&1 || true
    log "trial ${name}: $("${python}" -c 'import csv, sys
row = list(csv.DictReader(open(sys.argv[1])))[-1]
print("complete %s, final accuracy %s (chance 0.1)" % (row["complete"], row["last_acc_final_mean"]))' \
      "${out}/trial-${name}.csv" 2>&1)"
  done
  if ((trial_failed)); then exit 1; fi
fi

# ---- the comparison
status=0
compare_budget=$((${BENCH_TIMEOUT:-500} - SECONDS))
if ((compare_budget < 60)); then
  log "FAILED: only ${compare_budget} s left for the comparison after the trials"
  exit 1
fi
timeout "${compare_budget}" "${python}" "${repo}/tests/bench/compare_steps.py" \
  --device cuda --metadistill "${binary}" --python "${python}" \
  --archs "${ARCHS:-resnet18_cifar}" --methods "${METHODS:-baseline,byot,metadistiller}" \
  --compile-methods "${COMPILE_METHODS:-baseline}" \
  --batch "${BATCH:-128}" --steps "${STEPS:-30}" --warmup "${WARMUP:-5}" --rounds "${ROUNDS:-2}" \
  --json-out "${out}/raw.json" > "${out}/compare.md" 2> "${out}/compare.log" || status=$?
cat "${out}/compare.md"
if [[ "${status}" == 124 ]]; then
  log "FAILED: the comparison ran past ${compare_budget} s (fewer ROUNDS, STEPS or METHODS)"
  exit 1
elif [[ "${status}" != 0 ]]; then
  log "FAILED: compare_steps.py exited with ${status}; the end of compare.log:"
  tail -n 20 "${out}/compare.log" | tee -a "${out}/summary.txt"
  exit 1
fi
log "done: tables in compare.md, every run in raw.json"
