// The prefetching batch loader (see loader.h). Workers claim batch indices in order, assemble
// them without the lock, and file them by index; next() hands them out in index order, so the
// output does not depend on which worker finished first. A batch assembled for a plan that is
// no longer current (start_epoch was called again) is dropped.
#include "data/loader.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"

namespace md::data {
namespace {

std::uint64_t mix64(std::uint64_t value) {
  value += 0x9e3779b97f4a7c15ULL;
  value = (value ^ (value >> 30)) * 0xbf58476d1ce4e5b9ULL;
  value = (value ^ (value >> 27)) * 0x94d049bb133111ebULL;
  return value ^ (value >> 31);
}

// Salts keep the order and augmentation streams of one seed apart.
constexpr std::uint64_t kOrderSalt = 0x6f726465722d7631ULL;    // "order-v1"
constexpr std::uint64_t kAugmentSalt = 0x6175676d656e7431ULL;  // "augment1"

}  // namespace

std::vector<std::int64_t> epoch_order(std::int64_t count, std::uint64_t seed, std::int64_t epoch,
                                      Shuffle shuffle) {
  MD_CHECK(count >= 0 && epoch >= 0, "epoch_order(count ", count, ", epoch ", epoch, ")");
  std::vector<std::int64_t> order(static_cast<std::size_t>(count));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  if (shuffle == Shuffle::Off) return order;
  Rng rng(mix64(seed ^ kOrderSalt), static_cast<std::uint64_t>(epoch));
  for (std::int64_t i = count - 1; i > 0; --i) {
    const auto j = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(i + 1)));
    std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
  }
  return order;
}

std::uint64_t augment_seed(std::uint64_t seed, std::int64_t epoch) {
  return mix64(mix64(seed ^ kAugmentSalt) + static_cast<std::uint64_t>(epoch));
}

struct BatchLoader::EpochPlan {
  std::int64_t epoch = 0;
  std::vector<std::int64_t> order;
};

BatchLoader::BatchLoader(const ImageSet& set, const LoaderSpec& spec) : set_(set), spec_(spec) {
  MD_INPUT_CHECK(spec.batch_size >= 1, "batch_size must be >= 1, got ", spec.batch_size);
  MD_INPUT_CHECK(spec.world_size >= 1 && spec.rank >= 0 && spec.rank < spec.world_size,
                 "loader rank ", spec.rank, " of world size ", spec.world_size, " is invalid");
  MD_INPUT_CHECK(spec.prefetch_batches >= 1, "prefetch_batches must be >= 1, got ",
                 spec.prefetch_batches);
  MD_INPUT_CHECK(spec.threads >= 1, "loader threads must be >= 1, got ", spec.threads);
  validate_augment(spec.augment);
  MD_CHECK(set.count >= 0 &&
               set.pixels.size() == static_cast<std::size_t>(set.count * set.image_numel()) &&
               set.labels.size() == static_cast<std::size_t>(set.count),
           "inconsistent ImageSet ", set.source);
  table_ = normalization_table(spec.normalization, set.channels);
  const std::int64_t global_batch = spec.batch_size * spec.world_size;
  batches_per_epoch_ = spec.remainder == Remainder::Keep
                           ? (set.count + global_batch - 1) / global_batch
                           : set.count / global_batch;
  workers_.reserve(static_cast<std::size_t>(spec.threads));
  try {
    for (int i = 0; i < spec.threads; ++i) workers_.emplace_back([this] { worker_loop(); });
  } catch (...) {
    stop_workers();
    throw;
  }
}

BatchLoader::~BatchLoader() {
  stop_workers();
}

void BatchLoader::stop_workers() noexcept {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  work_available_.notify_all();
  for (std::thread& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
}

void BatchLoader::start_epoch(std::int64_t epoch, std::int64_t first_batch) {
  MD_CHECK(epoch >= 0, "start_epoch(", epoch, ")");
  MD_INPUT_CHECK(first_batch >= 0 && first_batch <= batches_per_epoch_, "resume position ",
                 first_batch, " is outside the epoch's ", batches_per_epoch_, " batches of ",
                 set_.source);
  auto plan = std::make_shared<EpochPlan>();
  plan->epoch = epoch;
  plan->order = epoch_order(set_.count, spec_.seed, epoch, spec_.shuffle);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    plan_ = std::move(plan);
    position_ = first_batch;
    next_claim_ = first_batch;
    ready_.clear();
    failed_batch_ = -1;
    failure_ = nullptr;
  }
  work_available_.notify_all();
}

bool BatchLoader::can_claim() const {
  return plan_ != nullptr && failure_ == nullptr && next_claim_ < batches_per_epoch_ &&
         next_claim_ < position_ + spec_.prefetch_batches;
}

void BatchLoader::worker_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    work_available_.wait(lock, [this] { return stopping_ || can_claim(); });
    if (stopping_) return;
    std::shared_ptr<const EpochPlan> plan = plan_;
    const std::int64_t batch_index = next_claim_++;
    lock.unlock();
    Batch batch;
    std::exception_ptr error;
    try {
      assemble(*plan, batch_index, batch);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    if (plan != plan_) continue;  // a newer start_epoch made this batch stale
    if (error) {
      if (failed_batch_ < 0 || batch_index < failed_batch_) {
        failed_batch_ = batch_index;
        failure_ = error;
      }
    } else {
      ready_.emplace(batch_index, std::move(batch));
    }
    batch_ready_.notify_all();
  }
}

bool BatchLoader::next(Batch& batch) {
  std::unique_lock<std::mutex> lock(mutex_);
  MD_CHECK(plan_ != nullptr, "BatchLoader::next before start_epoch");
  if (position_ >= batches_per_epoch_) return false;
  batch_ready_.wait(lock, [this] {
    return ready_.count(position_) > 0 || (failure_ != nullptr && failed_batch_ <= position_);
  });
  auto found = ready_.find(position_);
  if (found == ready_.end()) std::rethrow_exception(failure_);
  batch = std::move(found->second);
  ready_.erase(found);
  ++position_;
  lock.unlock();
  work_available_.notify_all();
  return true;
}

std::int64_t BatchLoader::position() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return position_;
}

void BatchLoader::assemble(const EpochPlan& plan, std::int64_t batch_index, Batch& batch) const {
  const std::int64_t global_batch = spec_.batch_size * spec_.world_size;
  const std::int64_t global_begin = batch_index * global_batch;
  const std::int64_t global_size = std::min(global_batch, set_.count - global_begin);
  const std::int64_t begin = global_begin + global_size * spec_.rank / spec_.world_size;
  const std::int64_t end = global_begin + global_size * (spec_.rank + 1) / spec_.world_size;
  const std::int64_t size = end - begin;

  batch.images = Tensor::empty({size, set_.channels, set_.height, set_.width});
  batch.labels = Tensor::empty({size}, DType::Int32);
  batch.indices.assign(plan.order.begin() + begin, plan.order.begin() + end);
  float* images = size > 0 ? batch.images.data<float>() : nullptr;
  std::int32_t* labels = size > 0 ? batch.labels.data<std::int32_t>() : nullptr;
  const std::int64_t image_numel = set_.image_numel();
  const std::uint64_t epoch_seed = augment_seed(spec_.seed, plan.epoch);
  for (std::int64_t i = 0; i < size; ++i) {
    const std::int64_t source = batch.indices[static_cast<std::size_t>(i)];
    Rng rng(epoch_seed, static_cast<std::uint64_t>(source));
    const AugmentDraw draw = draw_augment(spec_.augment, set_.height, set_.width, rng);
    render_sample(set_.image(source), set_, spec_.augment, draw, table_, images + i * image_numel);
    const std::int32_t label = set_.labels[static_cast<std::size_t>(source)];
    MD_INPUT_CHECK(label >= 0 && label < set_.num_classes, "sample ", source, " of ", set_.source,
                   " has label ", label, ", outside [0, ", set_.num_classes, ")");
    labels[i] = label;
  }
}

}  // namespace md::data
