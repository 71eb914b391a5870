// metadistill predict: logits of a checkpoint's student, either for an array file (dataset `x`,
// float32 NCHW, used as is) or for the test set of a trial config (normalized as in training,
// with the accuracy of every head printed, computed as training computes it: train/evaluation.h).
// Output: `logits` (final head), `logits_aux<s>`. The checkpoint's student is built by
// train::load_checkpoint_student (train/weights.h).
#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>

#include "autograd/functions.h"
#include "backend/backend.h"
#include "cli/commands.h"
#include "core/error.h"
#include "data/loader.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "io/h5.h"
#include "train/evaluation.h"
#include "train/trainer.h"
#include "train/trial_data.h"
#include "train/weights.h"

namespace md::cli {

namespace po = boost::program_options;

namespace {

std::vector<Tensor> run_heads(const train::LoadedStudent& loaded, const Tensor& images) {
  autograd::NoGrad no_grad;
  nn::ForwardContext context{&loaded.student->layout(),
                             loaded.buffers.parameters,
                             Tensor(),
                             loaded.buffers.buffers,
                             nn::Mode::Eval,
                             RunningStatsUpdate::Skip};
  models::StudentOutput output = loaded.student->forward(context, autograd::Variable(images));
  std::vector<Tensor> logits;
  for (const auto& head : output.logits) logits.push_back(head.value().to(Device::cpu()));
  return logits;
}

// Appends rows of `part` (B, K) into `all` (N, K) at row `row`.
void put_rows(Tensor& all, const Tensor& part, std::int64_t row) {
  all.narrow_rows(row, row + part.dim(0)).copy_from(part);
}

io::NamedTensors name_heads(std::vector<Tensor> heads) {
  io::NamedTensors named;
  named.emplace_back("logits", heads.back());
  for (std::size_t s = 0; s + 1 < heads.size(); ++s)
    named.emplace_back("logits_aux" + std::to_string(s), heads[s]);
  return named;
}

}  // namespace

int predict_command(const Arguments& arguments) {
  std::string checkpoint, input, config_path, out, device_text = "auto";
  std::vector<std::string> overrides;
  int batch_size = 256;
  po::options_description options("metadistill predict");
  options.add_options()("help,h", "show this help")(
      "checkpoint", po::value(&checkpoint)->required(), "checkpoint (HDF5) with /model")(
      "input", po::value(&input), "HDF5 file with dataset x: float32 (N, C, H, W)")(
      "config", po::value(&config_path), "trial config: evaluate on its test set")(
      "set", po::value(&overrides)->composing(), "config overrides, as for train")(
      "out", po::value(&out)->required(), "output HDF5 file")("device", po::value(&device_text),
                                                              "auto | cpu | cuda | cuda:N")(
      "batch", po::value(&batch_size), "images per forward pass (default 256)");
  po::variables_map values;
  po::store(po::command_line_parser(arguments).options(options).run(), values);
  if (values.count("help")) {
    std::cout << options << "\n";
    return 0;
  }
  po::notify(values);
  MD_INPUT_CHECK(input.empty() != config_path.empty(),
                 "predict: give exactly one of --input and --config");
  MD_INPUT_CHECK(batch_size > 0, "predict: --batch must be positive");
  const Device device = train::resolve_device(device_text);
  train::LoadedStudent loaded = train::load_checkpoint_student(checkpoint, device);
  const int heads = loaded.student->num_heads();

  if (!input.empty()) {
    Tensor x = io::read_array(input, "x");
    MD_INPUT_CHECK(x.dtype() == DType::Float32 && x.ndim() == 4, input,
                   ": dataset x must be float32 (N, C, H, W), got ", x.describe());
    const std::int64_t count = x.dim(0);
    std::vector<Tensor> all;
    for (std::int64_t begin = 0; begin < count; begin += batch_size) {
      const std::int64_t end = std::min<std::int64_t>(count, begin + batch_size);
      std::vector<Tensor> part = run_heads(loaded, x.narrow_rows(begin, end).to(device));
      if (all.empty()) {
        for (const Tensor& head : part) all.push_back(Tensor::empty({count, head.dim(1)}));
      }
      for (int h = 0; h < heads; ++h)
        put_rows(all[static_cast<std::size_t>(h)], part[static_cast<std::size_t>(h)], begin);
    }
    io::write_arrays(out, name_heads(all));
    std::printf("predict: %lld images, %d heads -> %s\n", static_cast<long long>(count), heads,
                out.c_str());
    return 0;
  }

  const io::TrialConfig config = io::load_trial_config(config_path, overrides);
  // The test set normalized as in training (train/trial_data.h).
  const std::unique_ptr<train::TrialData> trial_data =
      train::load_trial_data(config, train::DataUse::EvaluateOnly);
  const std::int64_t test_count = trial_data->test->count();
  data::LoaderSpec spec;
  spec.batch_size = batch_size;
  spec.shuffle = data::Shuffle::Off;
  spec.remainder = data::Remainder::Keep;
  data::BatchLoader loader(*trial_data->test, spec);
  loader.start_epoch(0);
  std::vector<Tensor> all;
  Tensor labels = Tensor::empty({test_count}, DType::Int32);
  train::AccuracyCounts counts(heads);
  std::int64_t row = 0;
  data::Batch batch;
  while (loader.next(batch)) {
    std::vector<Tensor> part = run_heads(loaded, batch.images.to(device));
    if (all.empty()) {
      for (const Tensor& head : part) all.push_back(Tensor::empty({test_count, head.dim(1)}));
    }
    const std::int64_t n = batch.labels.numel();
    train::count_hits(counts, part, batch.labels);
    for (int h = 0; h < heads; ++h)
      put_rows(all[static_cast<std::size_t>(h)], part[static_cast<std::size_t>(h)], row);
    labels.narrow_rows(row, row + n).copy_from(batch.labels);
    row += n;
  }
  if (row < test_count) {  // unreadable images were skipped: keep the rows written
    for (Tensor& head : all) head = head.narrow_rows(0, row).clone();
    labels = labels.narrow_rows(0, row).clone();
    std::fprintf(stderr, "predict: %lld of %lld test images could not be read and were skipped\n",
                 static_cast<long long>(test_count - row), static_cast<long long>(test_count));
  }
  io::NamedTensors named = name_heads(all);
  named.emplace_back("labels", labels);
  io::write_arrays(out, named);
  // The metrics and tie rule of the trial log's /epoch rows (train/evaluation.h).
  for (const auto& [metric, value] :
       train::accuracy_metrics(counts, all.empty() ? 0 : all.back().dim(1))) {
    std::printf("%s %.4f\n", metric.c_str(), value);
  }
  return 0;
}

}  // namespace md::cli
