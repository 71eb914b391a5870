// metadistill bench: whole training steps of one method on random data of the model's input
// size, timed after warm-up; prints one line with images/s (and the per-step time). The
// PyTorch twin of each step lives in tests/bench, and compare scripts print the ratios.
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "backend/backend.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/rng.h"
#include "train/learner.h"
#include "train/trainer.h"

namespace md::cli {

namespace po = boost::program_options;

int bench_command(const Arguments& arguments) {
  std::string arch = "resnet18_cifar", method = "baseline", device_text = "auto";
  int batch = 128, steps = 20, warmup = 3, threads = 0, image_size = 32, channels = 3, classes = 100;
  po::options_description options("metadistill bench");
  options.add_options()("help,h", "show this help")(
      "arch", po::value(&arch), "architecture (default resnet18_cifar)")(
      "method", po::value(&method), "baseline | byot | metadistiller")(
      "batch", po::value(&batch), "batch size (default 128)")(
      "steps", po::value(&steps), "timed steps (default 20)")(
      "warmup", po::value(&warmup), "untimed steps first (default 3)")(
      "device", po::value(&device_text), "auto | cpu | cuda | cuda:N")(
      "threads", po::value(&threads), "CPU threads (0: all cores)")(
      "image-size", po::value(&image_size), "input height = width (default 32)")(
      "channels", po::value(&channels), "input channels (default 3)")(
      "classes", po::value(&classes), "number of classes (default 100)");
  po::variables_map values;
  po::store(po::command_line_parser(arguments).options(options).run(), values);
  if (values.count("help")) {
    std::cout << options << "\n";
    return 0;
  }
  po::notify(values);
  MD_INPUT_CHECK(batch > 0 && steps > 0 && warmup >= 0 && image_size > 0 && channels > 0 && classes > 1,
                 "bench: --batch, --steps, --image-size, --channels must be positive and --classes > 1");
  if (threads > 0) backend::set_cpu_threads(threads);
  train::LearnerSpec spec;
  spec.model = models::ModelSpec{arch, classes, channels};
  if (method == "baseline") {
    spec.loss.method = train::MethodKind::Baseline;
  } else if (method == "byot") {
    spec.loss.method = train::MethodKind::Byot;
  } else if (method == "metadistiller") {
    spec.loss.method = train::MethodKind::MetaDistiller;
  } else {
    throw InputError("bench: --method must be baseline, byot or metadistiller, got '" + method + "'");
  }
  spec.device = train::resolve_device(device_text);
  train::Collective single_rank;
  train::Learner learner(spec, single_rank);

  Rng rng(1);
  auto random_batch = [&] {
    Tensor images = Tensor::empty({batch, channels, image_size, image_size});
    for (std::int64_t i = 0; i < images.numel(); ++i) images.data<float>()[i] = static_cast<float>(rng.normal());
    Tensor labels = Tensor::empty({batch}, DType::Int32);
    for (std::int64_t i = 0; i < batch; ++i) {
      labels.data<std::int32_t>()[i] = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(classes)));
    }
    return std::make_pair(images.to(spec.device), labels.to(spec.device));
  };
  const auto [images, labels] = random_batch();
  const auto meta_batch = random_batch();
  Backend& backend = backend::get(spec.device);
  auto run_steps = [&](int count) {
    for (int i = 0; i < count; ++i) learner.step(images, labels, 0.01, [&] { return meta_batch; });
    backend.synchronize();
  };
  run_steps(warmup);
  const auto start = std::chrono::steady_clock::now();
  run_steps(steps);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double images_per_second = static_cast<double>(batch) * steps / seconds;
  std::printf("bench arch=%s method=%s device=%s batch=%d steps=%d images_per_s=%.1f ms_per_step=%.2f threads=%d\n",
              arch.c_str(), method.c_str(), spec.device.str().c_str(), batch, steps, images_per_second,
              1000.0 * seconds / steps, backend::cpu_threads());
  return 0;
}

}  // namespace md::cli
