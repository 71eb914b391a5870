// metadistill bench: whole training steps of one method on random data of the model's input
// size, timed after warm-up; prints one line with images/s, the per-step time and the peak
// memory (--json: one JSON object). The PyTorch twin of each step is
// tests/bench/bench_step_torch.py, and tests/bench/compare_steps.py prints the ratios.
// The optimizer is the config's default (SGD momentum 0.9, weight decay 5e-4, lr 0.01), so the
// twin can match it. Peak memory: on CUDA the caching allocator's peak of bytes handed out
// (since the process started); on the CPU the process's peak RSS (ru_maxrss) minus its RSS
// before the model was built.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "backend/backend.h"
#include "cli/commands.h"
#include "cli/omp_policy.h"
#include "core/error.h"
#include "core/rng.h"
#include "io/config_keys.h"
#include "train/learner.h"
#include "train/trainer.h"
#ifdef MD_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace md::cli {
namespace {

namespace po = boost::program_options;

// Resident set size of this process now, in bytes (0 when /proc is unavailable).
std::int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::int64_t total_pages = 0, resident_pages = 0;
  if (!(statm >> total_pages >> resident_pages)) return 0;
  return resident_pages * static_cast<std::int64_t>(sysconf(_SC_PAGESIZE));
}

std::int64_t peak_resident_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<std::int64_t>(usage.ru_maxrss) * 1024;  // ru_maxrss is in KiB on Linux
}

std::string json_string(const std::string& text) {
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  return quoted + "\"";
}

backend::MathPrecision parse_precision(const std::string& text) {
  if (text == "fp32") return backend::MathPrecision::Fp32;
  if (text == "tf32") return backend::MathPrecision::Tf32;
  if (text == "bf16") return backend::MathPrecision::Bf16;
  throw InputError("bench: --precision must be fp32, tf32 or bf16, got '" + text + "'");
}

}  // namespace

int bench_command(const Arguments& arguments) {
  constexpr double kLearningRate = 0.01;
  std::string arch = "resnet18_cifar", method = "baseline", device_text = "auto",
              precision_text = "fp32";
  int batch = 128, steps = 20, warmup = 3, threads = 0, image_size = 32, channels = 3,
      classes = 100;
  po::options_description options("metadistill bench");
  auto add = options.add_options();
  add("help,h", "show this help");
  add("arch", po::value(&arch), "architecture (default resnet18_cifar)");
  add("method", po::value(&method), "baseline | byot | metadistiller");
  add("batch", po::value(&batch), "batch size (default 128)");
  add("steps", po::value(&steps), "timed steps (default 20)");
  add("warmup", po::value(&warmup), "untimed steps first (default 3)");
  add("device", po::value(&device_text), "auto | cpu | cuda | cuda:N");
  add("threads", po::value(&threads), "CPU threads (0: all cores)");
  add("image-size", po::value(&image_size), "input height = width (default 32)");
  add("channels", po::value(&channels), "input channels (default 3)");
  add("classes", po::value(&classes), "number of classes (default 100)");
  add("precision", po::value(&precision_text),
      "fp32 | tf32 | bf16 (tf32: CUDA only; bf16: bfloat16 convolution and linear operands, "
      "emulated on the CPU)");
  const std::string cuda_graph_help =
      detail::concat("record the forward, loss and backward once and replay it (",
                     io::key_path::runtime_cuda_graph, "; baseline and byot)");
  add("cuda-graph", cuda_graph_help.c_str());
  add("json", "print one JSON object line");
  po::variables_map values;
  po::store(po::command_line_parser(arguments).options(options).run(), values);
  if (values.count("help")) {
    std::cout << options << "\n";
    return 0;
  }
  po::notify(values);
  MD_INPUT_CHECK(
      batch > 0 && steps > 0 && warmup >= 0 && image_size > 0 && channels > 0 && classes > 1,
      "bench: --batch, --steps, --image-size, --channels must be positive and --classes > 1");
  const backend::MathPrecision precision = parse_precision(precision_text);
  const bool json = values.count("json") > 0;
  if (threads > 0) backend::set_cpu_threads(threads);
  train::LearnerSpec spec;
  spec.model = models::ModelSpec{arch, classes, channels};
  spec.sgd = SgdParams{.learning_rate = kLearningRate, .momentum = 0.9, .weight_decay = 5e-4};
  if (method == "baseline") {
    spec.loss.method = train::MethodKind::Baseline;
  } else if (method == "byot") {
    spec.loss.method = train::MethodKind::Byot;
  } else if (method == "metadistiller") {
    spec.loss.method = train::MethodKind::MetaDistiller;
  } else {
    throw InputError("bench: --method must be baseline, byot or metadistiller, got '" + method +
                     "'");
  }
  spec.device = train::resolve_device(device_text);
  const bool cuda_graph = values.count("cuda-graph") > 0;
  MD_INPUT_CHECK(!cuda_graph || spec.loss.method != train::MethodKind::MetaDistiller,
                 "bench: --cuda-graph applies to baseline and byot steps (metadistiller steps "
                 "run op by op)");
  if (cuda_graph) spec.capture = train::StepCapture::Graph;
  MD_INPUT_CHECK(precision != backend::MathPrecision::Tf32 || spec.device.is_cuda(),
                 "bench: --precision tf32 is for CUDA devices only (device ", spec.device.str(),
                 ")");
  backend::ComputeOptions compute = backend::compute_options();
  compute.precision = precision;
  backend::set_compute_options(compute);
  const std::int64_t rss_before = resident_bytes();
  train::Collective single_rank;
  train::Learner learner(spec, single_rank);

  Rng rng(1);
  auto random_batch = [&] {
    Tensor images = Tensor::empty({batch, channels, image_size, image_size});
    for (std::int64_t i = 0; i < images.numel(); ++i)
      images.data<float>()[i] = static_cast<float>(rng.normal());
    Tensor labels = Tensor::empty({batch}, DType::Int32);
    for (std::int64_t i = 0; i < batch; ++i) {
      labels.data<std::int32_t>()[i] =
          static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(classes)));
    }
    return std::make_pair(images.to(spec.device), labels.to(spec.device));
  };
  const auto [images, labels] = random_batch();
  const auto meta_batch = random_batch();
  Backend& backend = backend::get(spec.device);
  auto run_steps = [&](int count) {
    for (int i = 0; i < count; ++i)
      learner.step(images, labels, kLearningRate, [&] { return meta_batch; });
    backend.synchronize();
  };
  run_steps(warmup);
  const auto start = std::chrono::steady_clock::now();
  run_steps(steps);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double images_per_second = static_cast<double>(batch) * steps / seconds;
  std::int64_t peak_bytes = 0;
  std::string peak_kind = "rss_delta";
  if (spec.device.is_cuda()) {
#ifdef MD_HAVE_CUDA
    peak_bytes =
        static_cast<std::int64_t>(cuda::allocator_stats(spec.device.index).peak_bytes_in_use);
    peak_kind = "cuda_allocator_peak";
#endif
  } else {
    peak_bytes = std::max<std::int64_t>(0, peak_resident_bytes() - rss_before);
  }
  if (json) {
    std::printf(
        "{\"impl\": \"ours\", \"arch\": %s, \"method\": %s, \"device\": %s, \"batch\": %d, "
        "\"steps\": %d, \"precision\": %s, \"channels_last\": false, \"compile\": false, "
        "\"cuda_graph\": %s, "
        "\"threads\": %d, \"images_per_s\": %.3f, \"ms_per_step\": %.4f, \"peak_bytes\": %lld, "
        "\"peak_kind\": %s, \"omp_wait_policy\": %s}\n",
        json_string(arch).c_str(), json_string(method).c_str(),
        json_string(spec.device.str()).c_str(), batch, steps, json_string(precision_text).c_str(),
        cuda_graph ? "true" : "false", backend::cpu_threads(), images_per_second,
        1000.0 * seconds / steps, static_cast<long long>(peak_bytes),
        json_string(peak_kind).c_str(), json_string(omp_wait_policy_at_start()).c_str());
  } else {
    std::printf(
        "bench arch=%s method=%s device=%s batch=%d steps=%d precision=%s%s images_per_s=%.1f "
        "ms_per_step=%.2f threads=%d peak_mib=%.1f (%s) omp_wait_policy=%s\n",
        arch.c_str(), method.c_str(), spec.device.str().c_str(), batch, steps,
        precision_text.c_str(), cuda_graph ? " cuda_graph" : "", images_per_second,
        1000.0 * seconds / steps, backend::cpu_threads(),
        static_cast<double>(peak_bytes) / (1024.0 * 1024.0), peak_kind.c_str(),
        omp_wait_policy_at_start().empty() ? "unset" : omp_wait_policy_at_start().c_str());
  }
  return 0;
}

}  // namespace md::cli
