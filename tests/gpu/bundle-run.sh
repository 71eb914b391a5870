#!/usr/bin/env bash
# The GPU checks of a carried bundle, in one call on a GPU machine (issue 15). tests/gpu/bundle.sh
# copies this file to DIR/run.sh beside the binaries (bin/), their non-CUDA libraries
# (libs.tar.xz), the PyTorch twin scripts (scripts/) and a small synthetic IDX set (data/).
#
# Usage: DIR/run.sh [--budget-s N]      every step, in at most N seconds (default 300)
#        DIR/run.sh --print-env         resolve the libraries, print `export LD_LIBRARY_PATH=...`
#                                       (eval it to run bin/* by hand); exit 1 naming any missing
#
# Steps, each time-boxed with `timeout`; a step that fails is recorded and the next one still runs:
#   libs    unpack the carried libraries; find the CUDA ones (cudart, cuBLAS, cuDNN, NCCL: never
#           carried) in the CUDA toolkit's folders first, then in the nvidia/*/lib folders of the
#           Python that holds PyTorch (PyTorch's wheels), by their versioned sonames only
#           (libcudnn.so.9, never libcudnn.so); check every binary's libraries with the loader
#   env     nvidia-smi, driver, GPUs, the libraries resolved and from where, Python/PyTorch, MPI
#   tests   bin/test_gpu (gtest XML): each test passed / failed / skipped; a skip while a GPU is
#           visible is a failure; a crash reruns the tests one by one to name the culprit
#   trials  short real trials on data/ (each method in fp32, tf32 and bf16, deterministic
#           algorithms, runtime.cuda_graph for baseline and byot): accuracy and images/s. Without
#           a GPU they run 3 steps each on the CPU, so the configs and the data path are checked.
#   dp      a 2-rank data-parallel trial under mpirun, when an MPI launcher exists here
#   bench   whole training steps, ours beside the PyTorch twin on the same GPU
#           (scripts/compare_steps.py: eager fp32, TF32 and bf16 channels_last, torch.compile),
#           one invocation per method so that a failure keeps the others' ratios
# Results under $OUT (default ./gpu-results): summary.json (rewritten after every step, so a
# killed call still leaves one), summary.txt, env.txt, libs.txt, one log per step and run.
#
# Environment: OUT; MD_PYTHON (the Python with PyTorch; default: the first of python3,
# python3.12, python, /usr/bin/python3 that imports torch); MD_CUDA_LIB_DIRS (colon-separated
# folders searched before all others); MD_TRIAL_STEPS (default 40); MD_BENCH_ARCH
# (resnet18_cifar), MD_BENCH_BATCH (128), MD_BENCH_STEPS (20), MD_BENCH_COMPILE (on|off).
# Exit status: 0 a GPU is visible and every test, trial and benchmark passed; 1 something failed
# (summary.json says what); 2 no GPU is visible (nothing GPU-side was checked).
#
# Not `set -e`: every step must run after a failed one; each failure is recorded instead.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
budget=300
print_env=0
while (($#)); do
  case "$1" in
    --budget-s) budget="${2:?--budget-s needs a number}"; shift 2 ;;
    --budget-s=*) budget="${1#*=}"; shift ;;
    --print-env) print_env=1; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' | head -n -1; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "${budget}" =~ ^[0-9]+$ ]] || { echo "run.sh: --budget-s wants whole seconds, got ${budget}" >&2; exit 2; }

start_epoch="$(date +%s)"
deadline=$((start_epoch + budget))
now() { date +%s; }
left() { echo $((deadline - $(now))); }

# ---------------------------------------------------------------- output and JSON helpers
if ((print_env)); then
  out="$(mktemp -d)"
else
  out="${OUT:-./gpu-results}"
  mkdir -p "${out}"
  out="$(cd "${out}" && pwd)"
  : > "${out}/summary.txt"
fi
say() { echo "[run.sh] $*" | tee -a "${out}/summary.txt" >&2; }

json_str() {  # a JSON string literal of $1
  local s="$1"
  s="${s//\\/\\\\}"; s="${s//\"/\\\"}"; s="${s//$'\n'/\\n}"; s="${s//$'\t'/\\t}"; s="${s//$'\r'/\\r}"
  s="$(printf '%s' "${s}" | tr -d '\000-\010\013\014\016-\037')"
  printf '"%s"' "${s}"
}
json_num() { if [[ "$1" =~ ^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]]; then printf '%s' "$1"; else printf 'null'; fi; }
join_by() { local sep="$1"; shift; local first=1 item; for item in "$@"; do ((first)) || printf '%s' "${sep}"; printf '%s' "${item}"; first=0; done; }

steps_json=()
failures=()
record_step() {  # name status seconds note
  steps_json+=("{\"name\": $(json_str "$1"), \"status\": $(json_str "$2"), \"seconds\": $(json_num "$3"), \"note\": $(json_str "$4")}")
  if [[ "$2" == failed || "$2" == timeout ]]; then failures+=("$1: $4"); fi
  say "step $1: $2 ($3 s)${4:+ - $4}"
  write_summary
}

# Runs "$@" with a time box of $1 seconds; output to log $2. Returns the command's status (124
# on timeout).
boxed() {
  local seconds="$1" log="$2"; shift 2
  if ((seconds < 1)); then echo "not run: no time left in the budget" >> "${log}"; return 124; fi
  timeout --kill-after=10 "${seconds}" "$@" >> "${log}" 2>&1
}

# ---------------------------------------------------------------- state for summary.json
gpu_visible=false
gpu_names=()
driver=""
libs_json="{}"
libs_missing=()
tests_json="null"
trials_json=()
dp_json="null"
bench_json="null"

write_summary() {
  ((print_env)) && return 0
  local result exit_status
  if ((${#failures[@]})); then result=failed; exit_status=1
  elif [[ "${gpu_visible}" != true ]]; then result=no_gpu; exit_status=2
  else result=passed; exit_status=0; fi
  local gpus=() name failure_items=() item
  for name in "${gpu_names[@]+"${gpu_names[@]}"}"; do gpus+=("$(json_str "${name}")"); done
  for item in "${failures[@]+"${failures[@]}"}"; do failure_items+=("$(json_str "${item}")"); done
  {
    echo "{"
    echo "  \"schema\": 1,"
    echo "  \"bundle\": $(json_str "$(tr '\n' ';' < "${here}/BUNDLE.txt" 2> /dev/null)"),"
    echo "  \"host\": $(json_str "$(uname -n)"),"
    echo "  \"started\": $(json_str "$(date -u -d "@${start_epoch}" +%FT%TZ)"),"
    echo "  \"elapsed_s\": $(($(now) - start_epoch)),"
    echo "  \"budget_s\": ${budget},"
    echo "  \"gpu_visible\": ${gpu_visible},"
    echo "  \"gpus\": [$(join_by ', ' "${gpus[@]+"${gpus[@]}"}")],"
    echo "  \"driver\": $(json_str "${driver}"),"
    echo "  \"libraries\": ${libs_json},"
    echo "  \"steps\": [$(join_by ', ' "${steps_json[@]+"${steps_json[@]}"}")],"
    echo "  \"tests\": ${tests_json},"
    echo "  \"trials\": [$(join_by ', ' "${trials_json[@]+"${trials_json[@]}"}")],"
    echo "  \"data_parallel\": ${dp_json},"
    echo "  \"bench\": ${bench_json},"
    echo "  \"failures\": [$(join_by ', ' "${failure_items[@]+"${failure_items[@]}"}")],"
    echo "  \"result\": \"${result}\","
    echo "  \"exit_status\": ${exit_status}"
    echo "}"
  } > "${out}/summary.json.tmp" && mv "${out}/summary.json.tmp" "${out}/summary.json"
  final_status="${exit_status}"
}
final_status=1

# ---------------------------------------------------------------- step: libs
step_start="$(now)"
libs_log="${out}/libs.txt"
: > "${libs_log}"
libs_note=""
libs_status=passed

# The carried (non-CUDA) libraries: unpacked beside the bundle when it is writable, else in a
# temporary folder.
lib_dir="${here}/lib"
if [[ -f "${here}/libs.tar.xz" ]]; then
  if ! [[ -f "${lib_dir}/.unpacked" ]]; then
    if ! mkdir -p "${lib_dir}" 2> /dev/null || ! [[ -w "${lib_dir}" ]]; then
      lib_dir="$(mktemp -d "${TMPDIR:-/tmp}/md-bundle-libs.XXXXXX")"
    fi
    if tar -C "${lib_dir}" -xJf "${here}/libs.tar.xz" 2>> "${libs_log}" ||
        { command -v python3 > /dev/null &&
          python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
            "${here}/libs.tar.xz" "${lib_dir}" 2>> "${libs_log}"; }; then
      touch "${lib_dir}/.unpacked"
    else
      libs_status=failed
      libs_note="cannot unpack libs.tar.xz (needs tar with xz, or python3)"
    fi
  fi
fi
echo "carried libraries: ${lib_dir} ($(ls "${lib_dir}" 2> /dev/null | wc -l) files)" >> "${libs_log}"

# The Python that holds PyTorch (for the wheels' libraries and the twin).
python=""
python_has_torch=0
for candidate in ${MD_PYTHON:-} python3 python3.12 python /usr/bin/python3; do
  command -v "${candidate}" > /dev/null 2>&1 || continue
  if timeout 30 "${candidate}" -c 'import importlib.util, sys; sys.exit(0 if importlib.util.find_spec("torch") else 1)' 2> /dev/null; then
    python="${candidate}"; python_has_torch=1; break
  fi
  [[ -z "${python}" ]] && python="${candidate}"
done
echo "python: ${python:-none} (torch importable: ${python_has_torch})" >> "${libs_log}"

# Folders that may hold CUDA libraries, in order: MD_CUDA_LIB_DIRS, the CUDA toolkit, then the
# nvidia/*/lib folders of the Python's site-packages.
cuda_dirs=()
add_dir() { local d; for d in "$@"; do [[ -d "${d}" ]] && cuda_dirs+=("$(cd "${d}" && pwd)"); done; return 0; }
IFS=: read -r -a extra_dirs <<< "${MD_CUDA_LIB_DIRS:-}"
add_dir "${extra_dirs[@]+"${extra_dirs[@]}"}"
toolkit_roots=()
[[ -n "${CUDA_HOME:-}" ]] && toolkit_roots+=("${CUDA_HOME}")
[[ -n "${CUDA_PATH:-}" ]] && toolkit_roots+=("${CUDA_PATH}")
if command -v nvcc > /dev/null 2>&1; then toolkit_roots+=("$(dirname "$(dirname "$(command -v nvcc)")")"); fi
toolkit_roots+=(/usr/local/cuda /usr/local/cuda-[0-9]*)
for root in "${toolkit_roots[@]}"; do
  add_dir "${root}/lib64" "${root}/lib" "${root}"/targets/*/lib
done
if [[ -n "${python}" ]]; then
  while IFS= read -r d; do add_dir "${d}"; done < <(timeout 30 "${python}" - << 'EOF' 2>> "${libs_log}"
import glob, os, site, sys
roots = []
for root in list(getattr(site, "getsitepackages", lambda: [])()) + [site.getusersitepackages()] + sys.path:
    if root and os.path.isdir(root) and root not in roots:
        roots.append(root)
for root in roots:
    for lib in sorted(glob.glob(os.path.join(root, "nvidia", "*", "lib"))):
        print(lib)
EOF
  )
fi
# deduplicate, keeping the order
declare -A seen_dir=()
ordered_dirs=()
for d in "${cuda_dirs[@]+"${cuda_dirs[@]}"}"; do
  [[ -n "${seen_dir[${d}]:-}" ]] && continue
  seen_dir[${d}]=1
  ordered_dirs+=("${d}")
done
echo "CUDA library folders searched, in order: ${ordered_dirs[*]:-none}" >> "${libs_log}"

# The system's loader cache (the driver's libcuda.so.1 lives there).
system_lookup() {
  if command -v ldconfig > /dev/null 2>&1; then
    ldconfig -p 2> /dev/null | awk -v n="$1" '$1 == n && /x86-64/ {print $NF; exit}'
  elif [[ -x /sbin/ldconfig ]]; then
    /sbin/ldconfig -p 2> /dev/null | awk -v n="$1" '$1 == n && /x86-64/ {print $NF; exit}'
  fi
}

# cuda-sonames.txt: "soname kind" (kind: linked | dlopen | optional | driver)
lib_entries=()
ld_dirs=()
add_ld_dir() { local d; for d in "${ld_dirs[@]+"${ld_dirs[@]}"}"; do [[ "${d}" == "$1" ]] && return 0; done; ld_dirs+=("$1"); }
while read -r soname kind; do
  [[ -z "${soname}" || "${soname}" == \#* ]] && continue
  found=""
  for d in "${ordered_dirs[@]+"${ordered_dirs[@]}"}"; do
    if [[ -e "${d}/${soname}" ]]; then found="${d}/${soname}"; add_ld_dir "${d}"; break; fi
  done
  origin="searched folders"
  if [[ -z "${found}" ]]; then found="$(system_lookup "${soname}")"; origin="loader cache"; fi
  if [[ -z "${found}" ]]; then
    printf '%-36s %-9s NOT FOUND\n' "${soname}" "${kind}" >> "${libs_log}"
    if [[ "${kind}" == linked || "${kind}" == dlopen ]]; then libs_missing+=("${soname}"); fi
    lib_entries+=("$(json_str "${soname}"): {\"kind\": $(json_str "${kind}"), \"path\": null}")
  else
    printf '%-36s %-9s %s (%s)\n' "${soname}" "${kind}" "$(readlink -f "${found}")" "${origin}" >> "${libs_log}"
    lib_entries+=("$(json_str "${soname}"): {\"kind\": $(json_str "${kind}"), \"path\": $(json_str "${found}"), \"from\": $(json_str "${origin}")}")
  fi
done < "${here}/cuda-sonames.txt"

library_path="${lib_dir}"
for d in "${ld_dirs[@]+"${ld_dirs[@]}"}"; do library_path="${library_path}:${d}"; done
export LD_LIBRARY_PATH="${library_path}${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}"
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH}" >> "${libs_log}"

# Every binary's libraries, as the loader resolves them now.
loader=""
for candidate in /lib64/ld-linux-x86-64.so.2 /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 /usr/lib64/ld-linux-x86-64.so.2; do
  if [[ -x "${candidate}" ]]; then loader="${candidate}"; break; fi
done
for binary in "${here}"/bin/*; do
  echo "--- ${binary##*/}" >> "${libs_log}"
  if [[ -n "${loader}" ]]; then
    listing="$(LD_TRACE_LOADED_OBJECTS=1 "${loader}" "${binary}" 2>&1)"  # what ldd does
  else
    listing="$(ldd "${binary}" 2>&1)"
  fi
  echo "${listing}" >> "${libs_log}"
  while read -r name; do
    libs_missing+=("${name} (needed by ${binary##*/})")
  done < <(awk '/=> not found/ {print $1} /error while loading shared libraries/ {sub(/.*shared libraries: /, ""); sub(/:.*/, ""); print}' <<< "${listing}")
done
# unique
if ((${#libs_missing[@]})); then
  mapfile -t libs_missing < <(printf '%s\n' "${libs_missing[@]}" | sort -u)
fi
missing_items=()
for item in "${libs_missing[@]+"${libs_missing[@]}"}"; do missing_items+=("$(json_str "${item}")"); done
libs_json="{\"carried\": $(json_str "${lib_dir}"), \"python\": $(json_str "${python}"), \"search_order\": [$(
  first=1; for d in "${ordered_dirs[@]+"${ordered_dirs[@]}"}"; do ((first)) || printf ', '; json_str "${d}"; first=0; done
)], \"ld_library_path\": $(json_str "${LD_LIBRARY_PATH}"), \"cuda\": {$(join_by ', ' "${lib_entries[@]+"${lib_entries[@]}"}")}, \"missing\": [$(join_by ', ' "${missing_items[@]+"${missing_items[@]}"}")]}"
if ((${#libs_missing[@]})); then
  libs_status=failed
  libs_note="${libs_note:+${libs_note}; }not found: ${libs_missing[*]}"
fi

if ((print_env)); then
  cat "${libs_log}" >&2
  rm -rf "${out}"
  if [[ "${libs_status}" != passed ]]; then echo "run.sh: ${libs_note}" >&2; exit 1; fi
  printf 'export LD_LIBRARY_PATH=%q\n' "${LD_LIBRARY_PATH}"
  exit 0
fi
record_step libs "${libs_status}" $(($(now) - step_start)) "${libs_note:-every library resolved (libs.txt)}"

# ---------------------------------------------------------------- step: env
step_start="$(now)"
env_log="${out}/env.txt"
{
  echo "date: $(date -u +%FT%TZ)"
  echo "host: $(uname -a)"
  echo "cpus: $(nproc 2> /dev/null)"
  echo "glibc: $(getconf GNU_LIBC_VERSION 2> /dev/null)"
  echo "bundle:"; sed 's/^/  /' "${here}/BUNDLE.txt" 2> /dev/null
} > "${env_log}"
if command -v nvidia-smi > /dev/null 2>&1 && timeout 30 nvidia-smi -L > "${out}/nvidia-smi-L.txt" 2>&1 &&
    grep -q '^GPU' "${out}/nvidia-smi-L.txt"; then
  gpu_visible=true
  mapfile -t gpu_names < <(grep '^GPU' "${out}/nvidia-smi-L.txt" | sed 's/ (UUID.*//')
  driver="$(timeout 30 nvidia-smi --query-gpu=driver_version --format=csv,noheader 2> /dev/null | head -n 1)"
  { echo "nvidia-smi --query-gpu:"
    timeout 30 nvidia-smi --query-gpu=index,name,driver_version,compute_cap,memory.total,pci.bus_id --format=csv 2>&1
    echo; timeout 30 nvidia-smi 2>&1; } >> "${env_log}"
elif ls /dev/nvidia[0-9]* > /dev/null 2>&1; then
  gpu_visible=true
  gpu_names=("unknown (device files present, nvidia-smi failed)")
  echo "nvidia-smi: failed or absent, but $(ls /dev/nvidia[0-9]* | paste -sd ' ') exist" >> "${env_log}"
else
  echo "nvidia-smi: $(command -v nvidia-smi > /dev/null 2>&1 && cat "${out}/nvidia-smi-L.txt" || echo 'not found'); no /dev/nvidia[0-9]*: no GPU visible" >> "${env_log}"
fi
echo "gpu visible: ${gpu_visible} ${gpu_names[*]:-}" >> "${env_log}"
if [[ -r /proc/driver/nvidia/version ]]; then echo "kernel driver: $(head -n 1 /proc/driver/nvidia/version)" >> "${env_log}"; fi
echo "libraries (libs.txt):" >> "${env_log}"
grep -E '^lib|^python|^LD_LIBRARY_PATH|^CUDA library' "${libs_log}" | sed 's/^/  /' >> "${env_log}"
if command -v nvcc > /dev/null 2>&1; then echo "nvcc: $(nvcc --version 2>&1 | tail -n 2 | paste -sd ' ')" >> "${env_log}"; fi
if ((python_has_torch)); then
  echo "torch: $(timeout 90 "${python}" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "available", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")' 2>&1 | tail -n 1)" >> "${env_log}"
else
  echo "torch: not found (${python:-no python}): the PyTorch twin cannot run" >> "${env_log}"
fi
mpirun_path="$(command -v mpirun 2> /dev/null || command -v mpiexec 2> /dev/null || true)"
echo "mpi launcher: ${mpirun_path:-none} $( [[ -n "${mpirun_path}" ]] && timeout 10 "${mpirun_path}" --version 2>&1 | head -n 1)" >> "${env_log}"
record_step env passed $(($(now) - step_start)) "gpu visible: ${gpu_visible}${gpu_names[0]:+ (${gpu_names[0]})}${driver:+, driver ${driver}}"

# ---------------------------------------------------------------- step: tests
# Counts per test from gtest's XML: "outcome suite.name" lines.
xml_outcomes() {
  awk '
    function attr(line, key,   m) { if (match(line, key "=\"[^\"]*\"")) return substr(line, RSTART + length(key) + 2, RLENGTH - length(key) - 3); return "" }
    function finish() { o = failed ? "failed" : (result == "skipped" || status == "notrun") ? "skipped" : "passed"; print o, cls "." name; open = 0 }
    /<testcase / { name = attr($0, "name"); cls = attr($0, "classname"); result = attr($0, "result"); status = attr($0, "status"); failed = 0; open = 1
                   if ($0 ~ /\/>[[:space:]]*$/) finish(); next }
    open && /<failure/ { failed = 1 }
    open && /<\/testcase>/ { finish() }
  ' "$@"
}
step_start="$(now)"
tests_log="${out}/test_gpu.log"
: > "${tests_log}"
tests_status=passed
tests_note=""
test_timeout=$(( $(left) * 3 / 10 ))
outcomes="${out}/test_gpu.outcomes"
: > "${outcomes}"
rm -f "${out}/test_gpu.xml"
boxed "${test_timeout}" "${tests_log}" "${here}/bin/test_gpu" "--gtest_output=xml:${out}/test_gpu.xml"
test_rc=$?
if [[ -s "${out}/test_gpu.xml" ]]; then
  xml_outcomes "${out}/test_gpu.xml" > "${outcomes}"
fi
if [[ ! -s "${outcomes}" ]]; then
  # No report: it crashed or ran out of time. One process per test, to name the culprit.
  tests_note="test_gpu exited with ${test_rc} and wrote no report; ran the tests one by one"
  echo "=== ${tests_note}" >> "${tests_log}"
  mapfile -t listed < <(timeout 60 "${here}/bin/test_gpu" --gtest_list_tests 2>> "${tests_log}" | awk '
    /^[^ ]/ { suite = $1; next } /^  / { print suite $1 }')
  mkdir -p "${out}/test_gpu.each"
  for t in "${listed[@]+"${listed[@]}"}"; do
    per="$(left)"; ((per > 60)) && per=60
    if ((per < 5 )); then echo "failed ${t} (not run: budget)" >> "${outcomes}"; continue; fi
    boxed "${per}" "${tests_log}" "${here}/bin/test_gpu" "--gtest_filter=${t}" "--gtest_output=xml:${out}/test_gpu.each/${t}.xml"
    rc=$?
    if [[ -s "${out}/test_gpu.each/${t}.xml" ]] && xml_outcomes "${out}/test_gpu.each/${t}.xml" | grep -q .; then
      xml_outcomes "${out}/test_gpu.each/${t}.xml" >> "${outcomes}"
    else
      echo "failed ${t} (exit ${rc}$( ((rc == 124)) && echo ': timeout'; ((rc > 128 && rc != 137)) && echo ": signal $((rc - 128))"))" >> "${outcomes}"
    fi
  done
  if [[ ! -s "${outcomes}" ]]; then echo "failed test_gpu (exit ${test_rc}, no test listed)" >> "${outcomes}"; fi
fi
n_passed="$(grep -c '^passed ' "${outcomes}")"
n_failed="$(grep -c '^failed ' "${outcomes}")"
n_skipped="$(grep -c '^skipped ' "${outcomes}")"
names_of() { local items=() t; while read -r _ t; do items+=("$(json_str "${t}")"); done < <(grep "^$1 " "${outcomes}"); join_by ', ' "${items[@]+"${items[@]}"}"; }
tests_json="{\"passed\": ${n_passed}, \"failed\": ${n_failed}, \"skipped\": ${n_skipped}, \"exit_status\": ${test_rc}, \"failed_names\": [$(names_of failed)], \"skipped_names\": [$(names_of skipped)]}"
tests_note="${tests_note:+${tests_note}; }${n_passed} passed, ${n_failed} failed, ${n_skipped} skipped"
if ((n_failed > 0)); then
  tests_status=failed
elif [[ "${gpu_visible}" == true ]] && ((n_skipped > 0)); then
  tests_status=failed
  tests_note="${tests_note} (a GPU is visible: a skipped test is a failure; does the process see the GPU?)"
elif ((test_rc != 0)); then
  tests_status=failed
  tests_note="${tests_note}; test_gpu exited with ${test_rc}"
fi
[[ "${gpu_visible}" != true ]] && tests_note="${tests_note} (no GPU: skipped is expected)"
grep '^failed ' "${outcomes}" | sed 's/^/  /' >> "${out}/summary.txt"
record_step tests "${tests_status}" $(($(now) - step_start)) "${tests_note}"

# ---------------------------------------------------------------- step: trials
step_start="$(now)"
trials_dir="${out}/trials"
mkdir -p "${trials_dir}"
trials_failed=0
trials_run=0
trial_steps="${MD_TRIAL_STEPS:-40}"
if [[ "${gpu_visible}" == true ]]; then
  trial_device=cuda; trial_batch=100; eval_batches=10; trial_threads=0
else
  trial_device=cpu; trial_batch=20; eval_batches=1; trial_steps=3; trial_threads=0
fi
step_deadline=$(( $(now) + $(left) * 5 / 10 ))
# method precision cuda_graph
for spec in "baseline fp32 true" "baseline tf32 true" "baseline bf16 true" \
    "byot fp32 true" "byot tf32 true" "byot bf16 true" \
    "metadistiller fp32 false" "metadistiller tf32 false" "metadistiller bf16 false"; do
  read -r method precision graph <<< "${spec}"
  name="${method}-${precision}$([[ "${graph}" == true ]] && echo -cuda_graph)"
  config="${trials_dir}/${name}.yaml"
  cat > "${config}" << EOF
dataset: {name: idx, root: ${here}/data}
model: {arch: resnet20, num_classes: 10}
method: {name: ${method}, meta: {generator_width: 32}}
optim: {epochs: 1, batch_size: ${trial_batch}, lr: 0.05, schedule: {name: cosine}}
augment: {random_crop: 2, flip: false}
runtime: {device: ${trial_device}, precision: ${precision}, deterministic: true, cuda_graph: ${graph},
          threads: ${trial_threads}, log_every: 10, max_train_batches: ${trial_steps}, max_eval_batches: ${eval_batches}}
EOF
  log="${trials_dir}/${name}.log"
  per=$((step_deadline - $(now)))
  ((per > 150)) && per=150
  t0="$(now)"
  status=complete
  if ((per < 5)); then
    status="not run (budget)"; rc=124
    echo "not run: no time left" > "${log}"
  else
    : > "${log}"
    boxed "${per}" "${log}" "${here}/bin/metadistill" train --config "${config}" --out "${trials_dir}/${name}" --progress lines
    rc=$?
    trials_run=$((trials_run + 1))
    if ((rc == 124)); then status="timeout after ${per} s"; elif ((rc != 0)); then status="failed (exit ${rc})"; fi
  fi
  seconds=$(($(now) - t0))
  # the final values the train command prints ("  last_acc_final 0.93"), the progress lines'
  # images/s (the last non-zero one), and images over wall time (evaluation included) as a fallback
  accuracy="$(awk '$1 == "last_acc_final" {v = $2} END {print v}' "${log}")"
  rate="$(grep -o '[0-9.]* img/s' "${log}" | awk '$1 > 0 {v = $1} END {print v}')"
  wall_rate="$(awk -v b="${trial_batch}" '$1 == "steps" {n = $2} $1 == "total_wall_s" {w = $2} END {if (n && w > 0) printf "%.0f", n * b / w}' "${log}")"
  algos="$(grep -ci 'algo' "${log}")"
  ((rc != 0)) && trials_failed=$((trials_failed + 1))
  trials_json+=("{\"name\": $(json_str "${name}"), \"method\": \"${method}\", \"precision\": \"${precision}\", \"device\": \"${trial_device}\", \"deterministic\": true, \"cuda_graph\": ${graph}, \"steps\": ${trial_steps}, \"status\": $(json_str "${status}"), \"accuracy\": $(json_num "${accuracy}"), \"images_per_s\": $(json_num "${rate}"), \"images_per_s_with_eval\": $(json_num "${wall_rate}"), \"seconds\": ${seconds}, \"algorithm_log_lines\": ${algos}}")
  say "trial ${name} on ${trial_device}: ${status}, accuracy ${accuracy:-?} (chance 0.1), ${rate:-?} img/s (${wall_rate:-?} with evaluation), ${seconds} s"
  if ((rc != 0)); then tail -n 5 "${log}" | sed 's/^/    /' | tee -a "${out}/summary.txt" >&2; fi
  grep -i 'algo' "${log}" | head -n 3 | sed 's/^/    /' >> "${out}/summary.txt"
  write_summary
done
trials_note="${trials_run} of 9 run on ${trial_device}, ${trials_failed} failed or not run"
[[ "${gpu_visible}" != true ]] && trials_note="${trials_note} (no GPU: ${trial_steps} steps each on the CPU)"
record_step trials "$( ((trials_failed)) && echo failed || echo passed)" $(($(now) - step_start)) "${trials_note}"

# ---------------------------------------------------------------- step: dp (2 ranks, one trial)
step_start="$(now)"
if [[ -z "${mpirun_path}" ]]; then
  dp_json="{\"status\": \"not run\", \"note\": \"no MPI launcher (mpirun/mpiexec) on this machine\"}"
  record_step dp skipped 0 "no MPI launcher (mpirun/mpiexec) on this machine: the 2-rank data-parallel trial was not run"
else
  dp_dir="${out}/dp"
  mkdir -p "${dp_dir}"
  cat > "${dp_dir}/trial.yaml" << EOF
dataset: {name: idx, root: ${here}/data}
model: {arch: resnet20, num_classes: 10}
method: {name: baseline}
optim: {epochs: 1, batch_size: ${trial_batch}, lr: 0.05}
runtime: {device: ${trial_device}, deterministic: true, ranks_per_trial: 2, log_every: 10,
          max_train_batches: ${trial_steps}, max_eval_batches: ${eval_batches}}
EOF
  printf 'name: dp\nbase: trial.yaml\n' > "${dp_dir}/sweep.yaml"
  per=$(( $(left) * 3 / 10 )); ((per > 180)) && per=180
  dp_log="${out}/dp.log"
  : > "${dp_log}"
  mpi_args=(-np 2)
  if "${mpirun_path}" --version 2>&1 | grep -qi "open mpi\|openrte"; then
    mpi_args+=(--oversubscribe -x LD_LIBRARY_PATH -x PATH)
    [[ "$(id -u)" == 0 ]] && mpi_args+=(--allow-run-as-root)
  fi
  (cd "${dp_dir}" && boxed "${per}" "${dp_log}" "${mpirun_path}" "${mpi_args[@]}" "${here}/bin/metadistill" sweep sweep.yaml --out out)
  rc=$?
  dp_status=passed; dp_note="2 ranks in one trial on ${trial_device}"
  if ((rc != 0)); then
    dp_status=failed; dp_note="exit ${rc}$( ((rc == 124)) && echo " (timeout after ${per} s)"): see dp.log"
  elif ! grep -q "1 group(s) of 2 rank(s)" "${dp_log}"; then
    dp_status=failed; dp_note="the ranks did not form one group of 2 (is ${mpirun_path} an Open MPI 4 launcher? the bundle links Open MPI 4.1): see dp.log"
  fi
  fallback="$(grep -i -m1 'share\|fallback\|host allreduce\|MPI allreduce' "${dp_log}" || true)"
  dp_json="{\"status\": \"${dp_status}\", \"note\": $(json_str "${dp_note}"), \"launcher\": $(json_str "${mpirun_path}"), \"collective_note\": $(json_str "${fallback}")}"
  record_step dp "${dp_status}" $(($(now) - step_start)) "${dp_note}"
fi

# ---------------------------------------------------------------- step: bench (ours beside PyTorch)
step_start="$(now)"
bench_dir="${out}/bench"
mkdir -p "${bench_dir}"
if [[ "${gpu_visible}" != true ]]; then
  bench_json="{\"status\": \"not run\", \"note\": \"no GPU\"}"
  record_step bench skipped 0 "no GPU: the comparison with PyTorch needs one"
elif ((!python_has_torch)); then
  bench_json="{\"status\": \"failed\", \"note\": \"no Python with PyTorch found (set MD_PYTHON)\"}"
  record_step bench failed 0 "no Python with PyTorch found (set MD_PYTHON)"
else
  arch="${MD_BENCH_ARCH:-resnet18_cifar}"
  runs=("baseline none" "metadistiller none" "byot none")
  [[ "${MD_BENCH_COMPILE:-on}" != off ]] && runs+=("baseline baseline")
  bench_failed=0
  rows=()
  for run in "${runs[@]}"; do
    read -r method compile <<< "${run}"
    label="${method}$([[ "${compile}" != none ]] && echo -compile)"
    per=$(( $(left) - 5 ))
    if [[ "${compile}" != none ]] && ((per < 150)); then
      say "bench ${label}: not run (${per} s left; torch.compile needs about two minutes: give --budget-s more)"
      continue
    fi
    if ((per < 30)); then
      say "bench ${label}: not run (${per} s left)"; bench_failed=1; continue
    fi
    log="${bench_dir}/${label}.log"
    : > "${log}"
    boxed "${per}" "${log}" "${python}" "${here}/scripts/compare_steps.py" --device cuda \
      --metadistill "${here}/bin/metadistill" --python "${python}" --archs "${arch}" --methods "${method}" \
      --compile-methods "${compile}" --batch "${MD_BENCH_BATCH:-128}" --steps "${MD_BENCH_STEPS:-20}" \
      --warmup 5 --rounds 1 --json-out "${bench_dir}/${label}.json" > "${bench_dir}/${label}.md"
    rc=$?
    if ((rc != 0)); then
      bench_failed=1
      say "bench ${label}: failed (exit ${rc}$( ((rc == 124)) && echo ', timeout')); the end of its log:"
      tail -n 5 "${log}" | sed 's/^/    /' | tee -a "${out}/summary.txt" >&2
    fi
    cat "${bench_dir}/${label}.md" >> "${out}/summary.txt"
    while IFS='|' read -r _ config ours theirs ratio ours_mib theirs_mib _; do
      config="$(echo "${config}" | sed 's/^ *//; s/ *$//')"
      rows+=("{\"config\": $(json_str "${config}"), \"ours_images_per_s\": $(json_num "$(echo ${ours})"), \"torch_images_per_s\": $(json_num "$(echo ${theirs})"), \"ratio\": $(json_num "$(echo ${ratio})"), \"ours_peak_mib\": $(json_num "$(echo ${ours_mib})"), \"torch_peak_mib\": $(json_num "$(echo ${theirs_mib})")}")
    done < <(grep -E '^\| .* vs ' "${bench_dir}/${label}.md")
    while IFS='|' read -r _ a cells; do
      rows+=("{\"config\": $(json_str "metadistiller/baseline step time ${a}:${cells}")}")
    done < <(grep -A3 'metadistiller / baseline' "${bench_dir}/${label}.md" | grep -E '^\| [a-z]' | grep -v '^| arch')
    bench_json="{\"status\": \"$( ((bench_failed)) && echo failed || echo passed)\", \"arch\": \"${arch}\", \"rows\": [$(join_by ', ' "${rows[@]+"${rows[@]}"}")]}"
    write_summary
  done
  record_step bench "$( ((bench_failed)) && echo failed || echo passed)" $(($(now) - step_start)) "${#rows[@]} rows (bench/*.md); ratio = ours / PyTorch images/s"
fi

write_summary
say "result: $(grep -o '"result": "[a-z_]*"' "${out}/summary.json") in $(($(now) - start_epoch)) s; summary in ${out}/summary.json"
exit "${final_status}"
