// A trial's checkpoint: its learner's state and its position (see trial_checkpoint.h).
#include "train/trial_checkpoint.h"

#include <filesystem>
#include <variant>

#include "core/error.h"
#include "core/logging.h"
#include "io/checkpoint.h"
#include "io/config_keys.h"
#include "io/log_schema.h"
#include "train/weights.h"

namespace md::train {
namespace {

std::int64_t int_attribute(const io::CheckpointData& data, const std::string& path,
                           const std::string& name) {
  auto it = data.attributes.find(name);
  MD_INPUT_CHECK(it != data.attributes.end() && std::holds_alternative<std::int64_t>(it->second),
                 path, ": checkpoint attribute '", name, "' is missing or not an integer");
  return std::get<std::int64_t>(it->second);
}

// The generator's weights and its optimizer's state (Adam's moments and step count, or SGD's
// momentum).
void put_generator(io::CheckpointData& data, Learner& learner) {
  const nn::FlatLayout& layout = learner.generator().layout().parameters;
  put_layout(data, "gen", layout, learner.generator_buffers().parameters);
  if (learner.generator_adam() != nullptr) {
    put_packed(data, "gen_optim", "exp_avg", layout, learner.generator_adam()->exp_avg());
    put_packed(data, "gen_optim", "exp_avg_sq", layout, learner.generator_adam()->exp_avg_sq());
    data.attributes["gen_adam_steps"] = learner.generator_adam()->steps();
  } else {
    put_packed(data, "gen_optim", "momentum", layout, learner.generator_sgd()->momentum_buffer());
  }
}

void load_generator(const io::CheckpointData& data, const std::string& path, Learner& learner) {
  const nn::FlatLayout& layout = learner.generator().layout().parameters;
  load_layout(data, path, "gen", layout, learner.generator_buffers().parameters);
  if (learner.generator_adam() != nullptr) {
    load_packed(data, path, "gen_optim", "exp_avg", layout, learner.generator_adam()->exp_avg());
    load_packed(data, path, "gen_optim", "exp_avg_sq", layout,
                learner.generator_adam()->exp_avg_sq());
    learner.generator_adam()->set_steps(int_attribute(data, path, "gen_adam_steps"));
  } else {
    load_packed(data, path, "gen_optim", "momentum", layout,
                learner.generator_sgd()->momentum_buffer());
  }
  if (const auto weight = data.attributes.find("gen_label_weight");
      weight != data.attributes.end() && std::holds_alternative<double>(weight->second)) {
    learner.set_label_weight(std::get<double>(weight->second));
  } else if (learner.spec().meta.label_weight != 0.0) {
    // Written before the label anchor existed: the trial goes on with the objective it began
    // with.
    log_warning(path, ": checkpoint from before ", io::key_path::method_meta_label_weight,
                "; this trial resumes without the generator's label anchor (label_weight 0), as it "
                "started");
    learner.set_label_weight(0.0);
  }
}

void put_position(io::CheckpointData& data, const TrialPosition& position) {
  data.attributes["epoch"] = static_cast<std::int64_t>(position.epoch);
  data.attributes["batch_in_epoch"] = position.batch_in_epoch;
  data.attributes["meta_epoch"] = position.meta_epoch;
  data.attributes["meta_position"] = position.meta_position;
  data.attributes["wall_s"] = position.wall_seconds;
  // The running loss sums of the current log interval and epoch, so that a resumed run logs
  // the same averages as an uninterrupted one.
  const RunningLossSums losses = position.losses.value_or(RunningLossSums{});
  data.attributes["loss_sum"] = losses.interval_sum;
  data.attributes["loss_count"] = losses.interval_count;
  data.attributes["epoch_loss_sum"] = losses.epoch_sum;
  data.attributes["epoch_loss_count"] = losses.epoch_count;
  for (const auto& [name, sum] : position.target_sums)
    data.attributes["epoch_" + name + "_sum"] = sum;
}

// The epoch_gen_*_sum attributes, by statistic name (gen_*).
std::map<std::string, double> target_sums(const io::CheckpointData& data) {
  std::map<std::string, double> sums;
  for (const auto& [name, value] : data.attributes) {
    const std::string prefix = "epoch_", suffix = "_sum";
    if (name.rfind(prefix + "gen_", 0) == 0 && name.size() > prefix.size() + suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
        std::holds_alternative<double>(value)) {
      sums[name.substr(prefix.size(), name.size() - prefix.size() - suffix.size())] =
          std::get<double>(value);
    }
  }
  return sums;
}

// The position after the learner's state is restored (the step count is the learner's).
void load_position(const io::CheckpointData& data, const std::string& path, Learner& learner,
                   TrialPosition& position) {
  position.epoch = static_cast<int>(int_attribute(data, path, "epoch"));
  position.batch_in_epoch = int_attribute(data, path, "batch_in_epoch");
  learner.set_steps(int_attribute(data, path, "step"));
  if (auto wall = data.attributes.find("wall_s");
      wall != data.attributes.end() && std::holds_alternative<double>(wall->second)) {
    position.wall_seconds = std::get<double>(wall->second);
  }
  if (data.attributes.count("epoch_loss_count")) {
    RunningLossSums losses;
    losses.interval_sum = io::attribute_double(data.attributes, "loss_sum", path);
    losses.interval_count = int_attribute(data, path, "loss_count");
    losses.epoch_sum = io::attribute_double(data.attributes, "epoch_loss_sum", path);
    losses.epoch_count = int_attribute(data, path, "epoch_loss_count");
    position.losses = losses;
  }
  position.target_sums = target_sums(data);
}

}  // namespace

void save_trial_checkpoint(const std::string& path, const CheckpointIdentity& identity,
                           Learner& learner, const TrialPosition& position) {
  io::CheckpointData data;
  put_student(data, learner.student(), learner.model());
  put_packed(data, "optim", "momentum", learner.student().layout().parameters,
             learner.optimizer().momentum_buffer());
  if (learner.has_generator()) put_generator(data, learner);
  data.attributes[io::kSchemaVersionAttribute] = io::kCheckpointSchemaVersion;
  data.attributes["arch"] = identity.model.arch;
  data.attributes["num_classes"] = static_cast<std::int64_t>(identity.model.num_classes);
  data.attributes["in_channels"] = static_cast<std::int64_t>(identity.model.in_channels);
  data.attributes["trial_id"] = identity.trial_id;
  data.attributes["config"] = identity.config_yaml;
  data.attributes["step"] = learner.steps();
  if (learner.has_generator())
    data.attributes["gen_label_weight"] = learner.spec().meta.label_weight;
  put_position(data, position);
  io::write_checkpoint(path, data);
}

std::optional<TrialPosition> load_trial_checkpoint(const std::string& path,
                                                   const std::string& trial_id, Learner& learner,
                                                   data::BatchLoader* meta_loader) {
  if (!std::filesystem::exists(path)) return std::nullopt;
  io::CheckpointData data = io::read_checkpoint(path);
  auto id = data.attributes.find("trial_id");
  MD_INPUT_CHECK(id != data.attributes.end() && std::holds_alternative<std::string>(id->second) &&
                     std::get<std::string>(id->second) == trial_id,
                 path, ": belongs to another trial");
  load_student(data, path, learner.student(), learner.model(), WeightGroups::BackboneAndAux);
  load_packed(data, path, "optim", "momentum", learner.student().layout().parameters,
              learner.optimizer().momentum_buffer());
  TrialPosition position;
  if (learner.has_generator()) {
    load_generator(data, path, learner);
    position.meta_epoch = int_attribute(data, path, "meta_epoch");
    position.meta_position = int_attribute(data, path, "meta_position");
    meta_loader->start_epoch(position.meta_epoch, position.meta_position);
  }
  load_position(data, path, learner, position);
  return position;
}

}  // namespace md::train
