// The prefetching batch loader (see loader.h). Workers claim batch indices in order, assemble
// them without the lock, and file them by index; next() hands them out in index order, so the
// output does not depend on which worker finished first. A batch assembled for a plan that is
// no longer current (start_epoch was called again) is dropped.
#include "data/loader.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "core/logging.h"
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
constexpr std::uint64_t kWindowSalt = 0x77696e646f772d31ULL;   // "window-1"

// The samples of rank `rank` for one epoch of a block source (see LoaderSpec in loader.h).
std::vector<std::int64_t> block_rank_order(const std::vector<std::int64_t>& block_sizes,
                                           std::uint64_t seed, std::int64_t epoch, Shuffle shuffle,
                                           int rank, int world_size, int window_blocks) {
  const auto block_count = static_cast<std::int64_t>(block_sizes.size());
  std::vector<std::int64_t> block_begin(block_sizes.size() + 1, 0);
  std::int64_t largest_block = 1;
  for (std::size_t b = 0; b < block_sizes.size(); ++b) {
    block_begin[b + 1] = block_begin[b] + block_sizes[b];
    largest_block = std::max(largest_block, block_sizes[b]);
  }
  const std::int64_t total = block_begin.back();
  const std::vector<std::int64_t> blocks = epoch_order(block_count, seed, epoch, shuffle);
  const std::int64_t part_begin = total * rank / world_size;
  const std::int64_t part_end = total * (rank + 1) / world_size;
  std::vector<std::int64_t> part;
  part.reserve(static_cast<std::size_t>(part_end - part_begin));
  std::int64_t stream_position = 0;
  for (std::int64_t block : blocks) {
    const std::int64_t size = block_sizes[static_cast<std::size_t>(block)];
    const std::int64_t from = std::max(part_begin, stream_position);
    const std::int64_t to = std::min(part_end, stream_position + size);
    for (std::int64_t at = from; at < to; ++at) {
      part.push_back(block_begin[static_cast<std::size_t>(block)] + (at - stream_position));
    }
    stream_position += size;
    if (stream_position >= part_end) break;
  }
  if (shuffle == Shuffle::Off) return part;
  const std::int64_t window = largest_block * window_blocks;
  const auto count = static_cast<std::int64_t>(part.size());
  for (std::int64_t begin = 0; begin < count; begin += window) {
    const std::int64_t size = std::min(window, count - begin);
    Rng rng(mix64(mix64(seed ^ kWindowSalt) + static_cast<std::uint64_t>(epoch)),
            static_cast<std::uint64_t>(rank) * 0x100000000ULL +
                static_cast<std::uint64_t>(begin / window));
    for (std::int64_t i = size - 1; i > 0; --i) {
      const auto j = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(i + 1)));
      std::swap(part[static_cast<std::size_t>(begin + i)],
                part[static_cast<std::size_t>(begin + j)]);
    }
  }
  return part;
}

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

std::int64_t in_memory_batches_per_epoch(std::int64_t count, const LoaderSpec& spec) {
  const std::int64_t global_batch = spec.batch_size * spec.world_size;
  return spec.remainder == Remainder::Keep ? (count + global_batch - 1) / global_batch
                                           : count / global_batch;
}

OrderRange in_memory_batch_range(std::int64_t count, const LoaderSpec& spec,
                                 std::int64_t batch_index) {
  const std::int64_t global_batch = spec.batch_size * spec.world_size;
  const std::int64_t global_begin = batch_index * global_batch;
  const std::int64_t global_size = std::min(global_batch, count - global_begin);
  return OrderRange{global_begin + global_size * spec.rank / spec.world_size,
                    global_begin + global_size * (spec.rank + 1) / spec.world_size};
}

struct BatchLoader::EpochPlan {
  std::int64_t epoch = 0;
  std::vector<std::int64_t>
      order;  // in-memory source: the whole epoch; block source: this rank's part
};

BatchLoader::BatchLoader(const SampleSource& source, const LoaderSpec& spec)
    : source_(source), spec_(spec), block_sizes_(source.block_sizes()) {
  MD_INPUT_CHECK(spec.batch_size >= 1, "batch_size must be >= 1, got ", spec.batch_size);
  MD_INPUT_CHECK(spec.world_size >= 1 && spec.rank >= 0 && spec.rank < spec.world_size,
                 "loader rank ", spec.rank, " of world size ", spec.world_size, " is invalid");
  MD_INPUT_CHECK(spec.prefetch_batches >= 1, "prefetch_batches must be >= 1, got ",
                 spec.prefetch_batches);
  MD_INPUT_CHECK(spec.threads >= 1, "loader threads must be >= 1, got ", spec.threads);
  MD_INPUT_CHECK(spec.window_blocks >= 1, "loader window_blocks must be >= 1, got ",
                 spec.window_blocks);
  const std::int64_t count = source.count();
  MD_CHECK(count >= 0, "negative sample count in ", source.description());
  if (block_sizes_.empty()) {
    batches_per_epoch_ = in_memory_batches_per_epoch(count, spec);
  } else {
    std::int64_t block_total = 0;
    for (std::int64_t size : block_sizes_) {
      MD_CHECK(size >= 0, "negative block size in ", source.description());
      block_total += size;
    }
    MD_CHECK(block_total == count, source.description(), ": blocks hold ", block_total,
             " samples, not ", count);
    batches_per_epoch_ =
        spec.remainder == Remainder::Keep
            ? ((count + spec.world_size - 1) / spec.world_size + spec.batch_size - 1) /
                  spec.batch_size
            : count / spec.world_size / spec.batch_size;
  }
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
                 source_.description());
  auto plan = std::make_shared<EpochPlan>();
  plan->epoch = epoch;
  plan->order = block_sizes_.empty()
                    ? epoch_order(source_.count(), spec_.seed, epoch, spec_.shuffle)
                    : block_rank_order(block_sizes_, spec_.seed, epoch, spec_.shuffle, spec_.rank,
                                       spec_.world_size, spec_.window_blocks);
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
    std::int64_t skipped = 0;
    try {
      skipped = assemble(*plan, batch_index, batch);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    if (plan != plan_) continue;  // a newer start_epoch made this batch stale
    skipped_ += skipped;
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

std::int64_t BatchLoader::skipped_samples() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return skipped_;
}

std::int64_t BatchLoader::assemble(const EpochPlan& plan, std::int64_t batch_index,
                                   Batch& batch) const {
  std::int64_t begin = 0;
  std::int64_t end = 0;
  if (block_sizes_.empty()) {
    const OrderRange range = in_memory_batch_range(source_.count(), spec_, batch_index);
    begin = range.begin;
    end = range.end;
  } else {
    const auto part_size = static_cast<std::int64_t>(plan.order.size());
    begin = std::min(part_size, batch_index * spec_.batch_size);
    end = std::min(part_size, begin + spec_.batch_size);
  }
  const std::int64_t size = end - begin;
  const SampleShape shape = source_.shape();
  const std::int64_t sample_numel = shape.numel();
  // Rendered in place, compacted over skipped samples; copied out only when some were skipped.
  batch.images = Tensor::empty({size, shape.channels, shape.height, shape.width});
  float* rendered = size > 0 ? batch.images.data<float>() : nullptr;
  std::vector<std::int32_t> labels;
  labels.reserve(static_cast<std::size_t>(size));
  batch.indices.clear();
  const std::uint64_t epoch_seed = augment_seed(spec_.seed, plan.epoch);
  for (std::int64_t i = begin; i < end; ++i) {
    const std::int64_t index = plan.order[static_cast<std::size_t>(i)];
    Rng rng(epoch_seed, static_cast<std::uint64_t>(index));
    float* out = rendered + static_cast<std::ptrdiff_t>(labels.size()) * sample_numel;
    const RenderResult result = source_.render(index, rng, out);
    if (!result.ok) {
      log_warning("skipping sample ", index, ": ", result.error);
      continue;
    }
    MD_INPUT_CHECK(result.label >= 0 && result.label < source_.num_classes(), "sample ", index,
                   " of ", source_.description(), " has label ", result.label, ", outside [0, ",
                   source_.num_classes(), ")");
    labels.push_back(result.label);
    batch.indices.push_back(index);
  }
  const auto kept = static_cast<std::int64_t>(labels.size());
  if (kept < size) {
    Tensor compact = Tensor::empty({kept, shape.channels, shape.height, shape.width});
    if (kept > 0) std::copy(rendered, rendered + kept * sample_numel, compact.data<float>());
    batch.images = std::move(compact);
  }
  batch.labels = Tensor::empty({kept}, DType::Int32);
  if (kept > 0) std::copy(labels.begin(), labels.end(), batch.labels.data<std::int32_t>());
  return size - kept;
}

}  // namespace md::data
