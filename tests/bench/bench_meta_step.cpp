// What a MetaDistiller step costs next to a baseline step of the same model, pass by pass
// (issue 9): each iteration runs one baseline step and one step of the method variant on the
// same random batch, interleaved so that other load on a shared machine hits both alike, and
// the learner's pass timing (train::PassTimes) splits the variant's step. Counters:
//   baseline_ms, step_ms          per step (process CPU time by default, see --clock)
//   ratio                         Σ step / Σ baseline over the iterations
//   <pass>_ms, <pass>_pct         each pass of the variant's step, and its share of the step
// Variants: baseline, byot, and metadistiller with the generator's fusion at each stage's
// resolution (the first design) or at the deepest stage's, with central or forward differences.
// This file only times: the meta-gradient's correctness is tested in tests/train.
//
// Settings (the rest of argv is Google Benchmark's): --threads=N (default 1), --clock=cpu|wall
// (default cpu: the process's CPU time, which other load spoils less with one thread),
// --batch=N (default: 64 for resnet20, 32 for resnet18_cifar), --width=N (generator width,
// default 128). Example:
//   bench_meta_step --benchmark_filter=resnet20 --benchmark_min_time=5
#include <benchmark/benchmark.h>

#include <cstdint>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "core/rng.h"
#include "train/learner.h"

namespace md::bench {
namespace {

struct Settings {
  int threads = 1;
  train::PassTiming clock = train::PassTiming::ProcessCpuClock;
  std::optional<int> batch;
  int generator_width = 128;
};

Settings& settings() {
  static Settings value;
  return value;
}

struct Workload {
  const char* name;
  const char* arch;
  int image_size;
  int channels;
  int classes;
  int batch;
};

struct Variant {
  const char* name;
  train::MethodKind method;
  models::GeneratorResolution resolution;
  train::FiniteDifference difference;
};

const std::vector<Workload>& workloads() {
  static const std::vector<Workload> list{
      {"resnet20_1x28x28_k10", "resnet20", 28, 1, 10, 64},
      {"resnet18_cifar_3x32x32_k100", "resnet18_cifar", 32, 3, 100, 32},
  };
  return list;
}

const std::vector<Variant>& variants() {
  using models::GeneratorResolution;
  using train::FiniteDifference;
  using train::MethodKind;
  static const std::vector<Variant> list{
      {"baseline", MethodKind::Baseline, GeneratorResolution::Deepest, FiniteDifference::Central},
      {"byot", MethodKind::Byot, GeneratorResolution::Deepest, FiniteDifference::Central},
      {"meta_stage_central", MethodKind::MetaDistiller, GeneratorResolution::Stage,
       FiniteDifference::Central},
      {"meta_deepest_central", MethodKind::MetaDistiller, GeneratorResolution::Deepest,
       FiniteDifference::Central},
      {"meta_deepest_forward", MethodKind::MetaDistiller, GeneratorResolution::Deepest,
       FiniteDifference::Forward},
  };
  return list;
}

train::LearnerSpec learner_spec(const Workload& workload, const Variant& variant) {
  train::LearnerSpec spec;
  spec.model = models::ModelSpec{workload.arch, workload.classes, workload.channels};
  spec.loss.method = variant.method;
  spec.meta.generator_width = settings().generator_width;
  spec.meta.generator_resolution = variant.resolution;
  spec.meta.difference = variant.difference;
  spec.device = Device::cpu();
  return spec;
}

// images: (N, C, H, W) standard normal, labels: (N) uniform over the classes.
std::pair<Tensor, Tensor> random_batch(const Workload& workload, int batch, std::uint64_t seed) {
  Rng rng(seed);
  Tensor images =
      Tensor::empty({batch, workload.channels, workload.image_size, workload.image_size});
  for (std::int64_t i = 0; i < images.numel(); ++i)
    images.data<float>()[i] = static_cast<float>(rng.normal());
  Tensor labels = Tensor::empty({batch}, DType::Int32);
  for (std::int64_t i = 0; i < batch; ++i) {
    labels.data<std::int32_t>()[i] =
        static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(workload.classes)));
  }
  return {images, labels};
}

void run_step_pair(benchmark::State& state, const Workload& workload, const Variant& variant) {
  const int batch = settings().batch.value_or(workload.batch);
  train::Collective single_rank;
  const Variant baseline_variant = variants().front();
  train::Learner baseline(learner_spec(workload, baseline_variant), single_rank);
  train::Learner learner(learner_spec(workload, variant), single_rank);
  baseline.set_pass_timing(settings().clock);
  learner.set_pass_timing(settings().clock);
  const auto [images, labels] = random_batch(workload, batch, 1);
  const std::pair<Tensor, Tensor> meta_batch = random_batch(workload, batch, 2);
  const train::Learner::MetaBatchSource meta_source = [&] { return meta_batch; };
  constexpr double kLearningRate = 0.01;
  baseline.step(images, labels, kLearningRate, meta_source);  // warm-up: first allocations
  learner.step(images, labels, kLearningRate, meta_source);

  double baseline_seconds = 0.0, step_seconds = 0.0;
  const auto pass_names = train::PassTimes{}.passes();
  std::vector<double> pass_sums(pass_names.size(), 0.0);
  for (auto _ : state) {
    baseline_seconds += baseline.step(images, labels, kLearningRate, meta_source).times.total;
    const train::StepReport report = learner.step(images, labels, kLearningRate, meta_source);
    step_seconds += report.times.total;
    state.SetIterationTime(report.times.total);
    const auto passes = report.times.passes();
    for (std::size_t p = 0; p < passes.size(); ++p) pass_sums[p] += passes[p].second;
  }
  const double iterations = static_cast<double>(state.iterations());
  state.counters["baseline_ms"] = 1e3 * baseline_seconds / iterations;
  state.counters["step_ms"] = 1e3 * step_seconds / iterations;
  state.counters["ratio"] = step_seconds / baseline_seconds;
  for (std::size_t p = 0; p < pass_names.size(); ++p) {
    if (pass_sums[p] == 0.0) continue;
    const std::string name = pass_names[p].first;
    state.counters[name + "_ms"] = 1e3 * pass_sums[p] / iterations;
    state.counters[name + "_pct"] = 100.0 * pass_sums[p] / step_seconds;
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

void register_benchmarks() {
  for (const Workload& workload : workloads()) {
    for (const Variant& variant : variants()) {
      const std::string name = std::string("meta_step/") + workload.name + "/" + variant.name;
      benchmark::RegisterBenchmark(name.c_str(),
                                   [&workload, &variant](benchmark::State& state) {
                                     run_step_pair(state, workload, variant);
                                   })
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
}

int parse_positive(std::string_view text, std::string_view flag) {
  try {
    const int value = std::stoi(std::string(text));
    if (value > 0) return value;
  } catch (const std::exception&) {
  }
  throw std::invalid_argument(std::string(flag) + " must be a positive integer, got '" +
                              std::string(text) + "'");
}

// Takes this file's flags out of argv; the rest stays for Google Benchmark.
void parse_settings(int& argc, char** argv) {
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const auto value_of = [&](std::string_view flag) { return arg.substr(flag.size()); };
    if (arg.starts_with("--threads=")) {
      settings().threads = parse_positive(value_of("--threads="), "--threads");
    } else if (arg.starts_with("--batch=")) {
      settings().batch = parse_positive(value_of("--batch="), "--batch");
    } else if (arg.starts_with("--width=")) {
      settings().generator_width = parse_positive(value_of("--width="), "--width");
    } else if (arg == "--clock=cpu") {
      settings().clock = train::PassTiming::ProcessCpuClock;
    } else if (arg == "--clock=wall") {
      settings().clock = train::PassTiming::WallClock;
    } else if (arg.starts_with("--clock=")) {
      throw std::invalid_argument("--clock must be cpu or wall, got '" +
                                  std::string(value_of("--clock=")) + "'");
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
}

}  // namespace
}  // namespace md::bench

int main(int argc, char** argv) {
  try {
    md::bench::parse_settings(argc, argv);
    md::backend::set_cpu_threads(md::bench::settings().threads);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
    benchmark::AddCustomContext("md_threads", std::to_string(md::backend::cpu_threads()));
    benchmark::AddCustomContext(
        "md_clock",
        md::bench::settings().clock == md::train::PassTiming::WallClock ? "wall" : "process_cpu");
    benchmark::AddCustomContext("md_generator_width",
                                std::to_string(md::bench::settings().generator_width));
    md::bench::register_benchmarks();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
  } catch (const std::exception& error) {
    std::cerr << "bench_meta_step: " << error.what() << "\n";
    return 2;
  }
}
