// metadistill predict: logits of a checkpoint's student, either for an array file (dataset `x`,
// float32 NCHW, used as is) or for the test set of a trial config (normalized as in training,
// with the accuracy of every head printed). Output: `logits` (final head), `logits_aux<s>`.
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
#include "train/trainer.h"
#include "train/trial_data.h"
#include "train/weights.h"

namespace md::cli {

namespace po = boost::program_options;

namespace {

// The student a checkpoint holds: arch and num_classes from its attributes, the input channels
// from its first convolution, auxiliary heads when it has /aux.
struct LoadedStudent {
  std::unique_ptr<models::Student> student;
  nn::ModelBuffers buffers;
};

LoadedStudent load_checkpoint_student(const std::string& path, Device device) {
  const io::CheckpointData data = io::read_checkpoint(path);
  models::ModelSpec spec;
  spec.arch = io::attribute_string(data.attributes, "arch", path);
  spec.num_classes = static_cast<int>(io::attribute_int(data.attributes, "num_classes", path));
  if (data.attributes.count("in_channels")) {
    spec.in_channels = static_cast<int>(io::attribute_int(data.attributes, "in_channels", path));
  }
  auto model = data.groups.find("model");
  MD_INPUT_CHECK(model != data.groups.end() && !model->second.empty(), path, ": no /model group");
  const bool has_aux = data.groups.count("aux") != 0;
  LoadedStudent loaded;
  loaded.student = std::make_unique<models::Student>(spec, has_aux ? models::AuxHeads::Byot : models::AuxHeads::None);
  // A checkpoint without in_channels (written by PyTorch) tells it by its first weight.
  const nn::TensorSlot& first = loaded.student->layout().parameters.slot(0);
  if (const Tensor* stored = io::find_tensor(model->second, first.name);
      stored != nullptr && stored->ndim() == 4 && stored->shape()[1] != first.shape[1] &&
      !data.attributes.count("in_channels")) {
    spec.in_channels = static_cast<int>(stored->shape()[1]);
    loaded.student = std::make_unique<models::Student>(spec, has_aux ? models::AuxHeads::Byot : models::AuxHeads::None);
  }
  // A student trained with another method.aux.width: every head's bottleneck as stored, when the
  // heads share one width (last_stage_quarter or N); otherwise loading names the mismatch.
  if (has_aux) {
    const io::NamedTensors& aux = data.groups.at("aux");
    int stored_width = 0;
    bool uniform = true, differs = false;
    for (int s = 0; s < loaded.student->num_aux_heads(); ++s) {
      const std::string name = "aux." + std::to_string(s) + ".conv1.weight";
      const Tensor* stored = io::find_tensor(aux, name);
      const int slot = loaded.student->layout().parameters.find(name);
      if (stored == nullptr || stored->ndim() != 4 || slot < 0) continue;
      const int width = static_cast<int>(stored->shape()[0]);
      if (stored_width != 0 && width != stored_width) uniform = false;
      stored_width = width;
      differs = differs || width != loaded.student->layout().parameters.slot(slot).shape[0];
    }
    if (differs && uniform) {
      spec.aux_width = {.rule = models::AuxWidthRule::Fixed, .channels = stored_width};
      loaded.student = std::make_unique<models::Student>(spec, models::AuxHeads::Byot);
    }
  }
  loaded.buffers = nn::ModelBuffers::allocate(loaded.student->layout(), DType::Float32, device);
  train::load_student(data, path, *loaded.student, loaded.buffers,
                      has_aux ? train::WeightGroups::BackboneAndAux : train::WeightGroups::BackboneOnly);
  return loaded;
}

std::vector<Tensor> run_heads(const LoadedStudent& loaded, const Tensor& images) {
  autograd::NoGrad no_grad;
  nn::ForwardContext context{&loaded.student->layout(), loaded.buffers.parameters, Tensor(),
                             loaded.buffers.buffers, nn::Mode::Eval, RunningStatsUpdate::Skip};
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
  for (std::size_t s = 0; s + 1 < heads.size(); ++s) named.emplace_back("logits_aux" + std::to_string(s), heads[s]);
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
      "out", po::value(&out)->required(), "output HDF5 file")(
      "device", po::value(&device_text), "auto | cpu | cuda | cuda:N")(
      "batch", po::value(&batch_size), "images per forward pass (default 256)");
  po::variables_map values;
  po::store(po::command_line_parser(arguments).options(options).run(), values);
  if (values.count("help")) {
    std::cout << options << "\n";
    return 0;
  }
  po::notify(values);
  MD_INPUT_CHECK(input.empty() != config_path.empty(), "predict: give exactly one of --input and --config");
  MD_INPUT_CHECK(batch_size > 0, "predict: --batch must be positive");
  const Device device = train::resolve_device(device_text);
  LoadedStudent loaded = load_checkpoint_student(checkpoint, device);
  const int heads = loaded.student->num_heads();

  if (!input.empty()) {
    Tensor x = io::read_array(input, "x");
    MD_INPUT_CHECK(x.dtype() == DType::Float32 && x.ndim() == 4, input, ": dataset x must be float32 (N, C, H, W), got ",
                   x.describe());
    const std::int64_t count = x.dim(0);
    std::vector<Tensor> all;
    for (std::int64_t begin = 0; begin < count; begin += batch_size) {
      const std::int64_t end = std::min<std::int64_t>(count, begin + batch_size);
      std::vector<Tensor> part = run_heads(loaded, x.narrow_rows(begin, end).to(device));
      if (all.empty()) {
        for (const Tensor& head : part) all.push_back(Tensor::empty({count, head.dim(1)}));
      }
      for (int h = 0; h < heads; ++h) put_rows(all[static_cast<std::size_t>(h)], part[static_cast<std::size_t>(h)], begin);
    }
    io::write_arrays(out, name_heads(all));
    std::printf("predict: %lld images, %d heads -> %s\n", static_cast<long long>(count), heads, out.c_str());
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
  std::vector<std::int64_t> correct(static_cast<std::size_t>(heads) + 1, 0);
  std::int64_t row = 0;
  data::Batch batch;
  while (loader.next(batch)) {
    std::vector<Tensor> part = run_heads(loaded, batch.images.to(device));
    if (all.empty()) {
      for (const Tensor& head : part) all.push_back(Tensor::empty({test_count, head.dim(1)}));
    }
    const std::int64_t n = batch.labels.numel();
    const std::int64_t classes = part.back().dim(1);
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int32_t label = batch.labels.data<std::int32_t>()[i];
      std::vector<double> ensemble(static_cast<std::size_t>(classes), 0.0);
      for (int h = 0; h < heads; ++h) {
        const float* logits = part[static_cast<std::size_t>(h)].data<float>() + i * classes;
        std::int64_t best = 0;
        for (std::int64_t k = 0; k < classes; ++k) {
          ensemble[static_cast<std::size_t>(k)] += logits[k];
          if (logits[k] > logits[best]) best = k;
        }
        correct[static_cast<std::size_t>(h)] += best == label;
      }
      std::int64_t best = 0;
      for (std::int64_t k = 1; k < classes; ++k) {
        if (ensemble[static_cast<std::size_t>(k)] > ensemble[static_cast<std::size_t>(best)]) best = k;
      }
      correct.back() += best == label;
    }
    for (int h = 0; h < heads; ++h) put_rows(all[static_cast<std::size_t>(h)], part[static_cast<std::size_t>(h)], row);
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
  for (int h = 0; h < heads; ++h) {
    std::printf("test_acc_head%d %.4f\n", h, static_cast<double>(correct[static_cast<std::size_t>(h)]) / static_cast<double>(row));
  }
  std::printf("test_acc_ensemble %.4f\n", static_cast<double>(correct.back()) / static_cast<double>(row));
  return 0;
}

}  // namespace md::cli
