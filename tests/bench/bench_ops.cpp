// Op benchmarks of the CPU backend at the shapes of resnet18_cifar (DESIGN.md §9): conv2d
// forward / backward-data / backward-filter for each distinct conv shape, batch norm (train)
// forward and backward and ReLU forward and backward for each distinct (C, H, W). Every
// benchmark has a twin of the same name in bench_ops_torch.py, and compare_ops.py pairs them
// into PyTorch/ours ratios, so the names ("conv_fwd/C64_O64_H32_K3_S1") are a contract.
// The time is wall-clock (UseRealTime): the ops run on several threads. The CPU time is the
// whole process's (MeasureProcessCPUTime), a figure that other load on a shared machine spoils
// less; compare_ops.py --clock cpu uses it. Both add a suffix to the names ("/real_time").
// This file only times: correctness of the ops is tested in tests/backend.
//
// Settings: --threads=N (or env MD_THREADS; default all cores) and --batch=N (or env
// MD_BENCH_BATCH; default 32); every other flag goes to Google Benchmark.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "backend/params.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace md::bench {
namespace {

// A convolution of resnet18_cifar: input (C, H, H) -> O maps, square kernel, padding K / 2.
struct ConvShape {
  std::int64_t in_channels;
  std::int64_t out_channels;
  std::int64_t size;
  std::int64_t kernel;
  int stride;
};

// The (C, H, W = H) of a feature map that batch norm and ReLU see.
struct MapShape {
  std::int64_t channels;
  std::int64_t size;
};

// resnet18_cifar: conv1, the four stages' 3x3 convs (first of a stage strided), and the 1x1
// stride-2 downsample convs of stages 2-4.
const std::vector<ConvShape> kConvShapes = {
    {3, 64, 32, 3, 1},    {64, 64, 32, 3, 1},   {64, 128, 32, 3, 2},  {64, 128, 32, 1, 2},
    {128, 128, 16, 3, 1}, {128, 256, 16, 3, 2}, {128, 256, 16, 1, 2}, {256, 256, 8, 3, 1},
    {256, 512, 8, 3, 2},  {256, 512, 8, 1, 2},  {512, 512, 4, 3, 1},
};

const std::vector<MapShape> kMapShapes = {{64, 32}, {128, 16}, {256, 8}, {512, 4}};

struct Settings {
  int threads = 0;
  std::int64_t batch = 32;
};

// "conv_fwd/C64_O64_H32_K3_S1" (streams, not string +: GCC 12 warns falsely on the latter).
std::string conv_name(const std::string& kind, const ConvShape& shape) {
  std::ostringstream name;
  name << kind << "/C" << shape.in_channels << "_O" << shape.out_channels << "_H" << shape.size
       << "_K" << shape.kernel << "_S" << shape.stride;
  return name.str();
}

// "bn_fwd/C64_H32"
std::string map_name(const std::string& kind, const MapShape& shape) {
  std::ostringstream name;
  name << kind << "/C" << shape.channels << "_H" << shape.size;
  return name.str();
}

Conv2dParams conv_params(const ConvShape& shape) {
  return Conv2dParams{.stride = shape.stride, .padding = static_cast<int>(shape.kernel / 2)};
}

// A float32 CPU tensor of N(0, 1) values (fixed seed: every run times the same data).
Tensor random_tensor(const Shape& shape, Rng& rng) {
  Tensor tensor = Tensor::empty(shape, DType::Float32, Device::cpu());
  float* values = tensor.data<float>();
  for (std::int64_t i = 0; i < tensor.numel(); ++i) values[i] = static_cast<float>(rng.normal());
  return tensor;
}

// Multiply-adds of one conv forward (each of the three passes costs the same), as flops.
double conv_flops(const ConvShape& shape, const Shape& output_shape, std::int64_t batch) {
  const double output_pixels = static_cast<double>(output_shape[2] * output_shape[3]);
  return 2.0 * static_cast<double>(batch) * static_cast<double>(shape.out_channels) *
         output_pixels * static_cast<double>(shape.in_channels * shape.kernel * shape.kernel);
}

enum class ConvPass { Forward, BackwardData, BackwardFilter };

void bench_conv(benchmark::State& state, ConvShape shape, ConvPass pass, std::int64_t batch) {
  Backend& cpu = backend::get(Device::cpu());
  Rng rng(1);
  const Conv2dParams params = conv_params(shape);
  // x, grad_x: (N, C, H, H); weight, grad_weight: (O, C, K, K); y, grad_y: (N, O, Ho, Wo)
  Tensor x = random_tensor({batch, shape.in_channels, shape.size, shape.size}, rng);
  Tensor weight =
      random_tensor({shape.out_channels, shape.in_channels, shape.kernel, shape.kernel}, rng);
  const Shape output_shape = conv2d_output_shape(x.shape(), weight.shape(), params);
  Tensor y = Tensor::empty(output_shape);
  Tensor grad_y = random_tensor(output_shape, rng);
  Tensor grad_x = Tensor::empty(x.shape());
  Tensor grad_weight = Tensor::empty(weight.shape());
  for (auto _ : state) {
    switch (pass) {
      case ConvPass::Forward:
        cpu.conv2d_forward(x, weight, y, params);
        break;
      case ConvPass::BackwardData:
        cpu.conv2d_backward_data(grad_y, weight, grad_x, params, Write::Overwrite);
        break;
      case ConvPass::BackwardFilter:
        cpu.conv2d_backward_filter(x, grad_y, grad_weight, params, Write::Overwrite);
        break;
    }
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(conv_flops(shape, output_shape, batch) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

void bench_batch_norm_forward(benchmark::State& state, MapShape shape, std::int64_t batch) {
  Backend& cpu = backend::get(Device::cpu());
  Rng rng(2);
  // x, y: (N, C, H, W); gamma, beta, statistics: (C)
  Tensor x = random_tensor({batch, shape.channels, shape.size, shape.size}, rng);
  Tensor y = Tensor::empty(x.shape());
  Tensor gamma = random_tensor({shape.channels}, rng);
  Tensor beta = random_tensor({shape.channels}, rng);
  Tensor save_mean = Tensor::empty({shape.channels});
  Tensor save_invstd = Tensor::empty({shape.channels});
  Tensor running_mean = Tensor::zeros({shape.channels});
  Tensor running_var = Tensor::full({shape.channels}, 1.0);
  for (auto _ : state) {
    cpu.batch_norm_forward_train(x, gamma, beta, y, save_mean, save_invstd, running_mean,
                                 running_var, BatchNormParams{}, RunningStatsUpdate::Update);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(2 * x.nbytes()));
}

void bench_batch_norm_backward(benchmark::State& state, MapShape shape, std::int64_t batch) {
  Backend& cpu = backend::get(Device::cpu());
  Rng rng(3);
  // x, grad_y, grad_x: (N, C, H, W); gamma, statistics, grad_gamma, grad_beta: (C)
  Tensor x = random_tensor({batch, shape.channels, shape.size, shape.size}, rng);
  Tensor grad_y = random_tensor(x.shape(), rng);
  Tensor grad_x = Tensor::empty(x.shape());
  Tensor gamma = random_tensor({shape.channels}, rng);
  Tensor beta = random_tensor({shape.channels}, rng);
  Tensor y = Tensor::empty(x.shape());
  Tensor save_mean = Tensor::empty({shape.channels});
  Tensor save_invstd = Tensor::empty({shape.channels});
  Tensor running_mean = Tensor::zeros({shape.channels});
  Tensor running_var = Tensor::full({shape.channels}, 1.0);
  cpu.batch_norm_forward_train(x, gamma, beta, y, save_mean, save_invstd, running_mean, running_var,
                               BatchNormParams{}, RunningStatsUpdate::Skip);
  Tensor grad_gamma = Tensor::empty({shape.channels});
  Tensor grad_beta = Tensor::empty({shape.channels});
  for (auto _ : state) {
    cpu.batch_norm_backward(x, grad_y, gamma, save_mean, save_invstd, grad_x, grad_gamma, grad_beta,
                            Write::Overwrite);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(3 * x.nbytes()));
}

enum class ReluPass { Forward, Backward };

void bench_relu(benchmark::State& state, MapShape shape, ReluPass pass, std::int64_t batch) {
  Backend& cpu = backend::get(Device::cpu());
  Rng rng(4);
  // x, y, grad_y, grad_x: (N, C, H, W)
  Tensor x = random_tensor({batch, shape.channels, shape.size, shape.size}, rng);
  Tensor y = Tensor::empty(x.shape());
  cpu.relu_forward(x, y);
  Tensor grad_y = random_tensor(x.shape(), rng);
  Tensor grad_x = Tensor::empty(x.shape());
  for (auto _ : state) {
    if (pass == ReluPass::Forward) {
      cpu.relu_forward(x, y);
    } else {
      cpu.relu_backward(y, grad_y, grad_x, Write::Overwrite);
    }
    benchmark::ClobberMemory();
  }
  const std::int64_t bytes_per_call =
      static_cast<std::int64_t>((pass == ReluPass::Forward ? 2 : 3) * x.nbytes());
  state.SetBytesProcessed(state.iterations() * bytes_per_call);
}

template <typename Function>
void register_op(const std::string& name, Function function) {
  benchmark::RegisterBenchmark(name.c_str(), function)
      ->MeasureProcessCPUTime()
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

void register_all(std::int64_t batch) {
  for (const ConvShape& shape : kConvShapes) {
    register_op(conv_name("conv_fwd", shape), [=](benchmark::State& state) {
      bench_conv(state, shape, ConvPass::Forward, batch);
    });
    register_op(conv_name("conv_bwd_data", shape), [=](benchmark::State& state) {
      bench_conv(state, shape, ConvPass::BackwardData, batch);
    });
    register_op(conv_name("conv_bwd_filter", shape), [=](benchmark::State& state) {
      bench_conv(state, shape, ConvPass::BackwardFilter, batch);
    });
  }
  for (const MapShape& shape : kMapShapes) {
    register_op(map_name("bn_fwd", shape),
                [=](benchmark::State& state) { bench_batch_norm_forward(state, shape, batch); });
    register_op(map_name("bn_bwd", shape),
                [=](benchmark::State& state) { bench_batch_norm_backward(state, shape, batch); });
    register_op(map_name("relu_fwd", shape), [=](benchmark::State& state) {
      bench_relu(state, shape, ReluPass::Forward, batch);
    });
    register_op(map_name("relu_bwd", shape), [=](benchmark::State& state) {
      bench_relu(state, shape, ReluPass::Backward, batch);
    });
  }
}

// A positive integer setting: `text` came from `source` (a flag or an environment variable).
std::int64_t parse_positive(const std::string& text, const std::string& source) {
  std::size_t used = 0;
  long long value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  MD_INPUT_CHECK(used == text.size() && value > 0, source, ": expected a positive integer, got '",
                 text, "'");
  return value;
}

// Takes --threads=N and --batch=N out of argv (the rest is Google Benchmark's), falling back on
// MD_THREADS and MD_BENCH_BATCH.
Settings parse_settings(int& argc, char** argv) {
  Settings settings;
  settings.threads = static_cast<int>(std::thread::hardware_concurrency());
  if (const char* env = std::getenv("MD_THREADS"); env != nullptr && *env != '\0') {
    settings.threads = static_cast<int>(parse_positive(env, "MD_THREADS"));
  }
  if (const char* env = std::getenv("MD_BENCH_BATCH"); env != nullptr && *env != '\0') {
    settings.batch = parse_positive(env, "MD_BENCH_BATCH");
  }
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.starts_with("--threads=")) {
      settings.threads = static_cast<int>(parse_positive(
          std::string(arg.substr(std::string_view("--threads=").size())), "--threads"));
    } else if (arg.starts_with("--batch=")) {
      settings.batch =
          parse_positive(std::string(arg.substr(std::string_view("--batch=").size())), "--batch");
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  return settings;
}

}  // namespace
}  // namespace md::bench

int main(int argc, char** argv) {
  try {
    const md::bench::Settings settings = md::bench::parse_settings(argc, argv);
    md::backend::init();
    md::backend::set_cpu_threads(settings.threads);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
    benchmark::AddCustomContext("md_threads", std::to_string(md::backend::cpu_threads()));
    benchmark::AddCustomContext("md_batch", std::to_string(settings.batch));
    md::bench::register_all(settings.batch);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
  } catch (const md::InputError& error) {
    std::cerr << "bench_ops: " << error.what() << '\n';
    return 2;
  } catch (const std::exception& error) {
    std::cerr << "bench_ops: " << error.what() << '\n';
    return 1;
  }
}
