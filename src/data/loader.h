// The prefetching batch loader: epoch orders, rank parts, and background assembly of batches
// (each sample rendered by its SampleSource: decode, augment, normalize) into a bounded queue
// while the training step runs. Everything random is a pure function of (seed, epoch, sample
// index): the epoch order is seeded by (seed, epoch), and each sample's augmentation draws from
// an Rng seeded by (seed, epoch, source index). So batches are bit-identical for any thread
// count, prefetch depth or resume position. A sample the source cannot render (a corrupt JPEG)
// is skipped: its batch is one shorter, the skip is counted and logged, training goes on. It
// never owns the data (it keeps a reference to the source) and never touches a GPU: batches are
// CPU tensors.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/tensor.h"
#include "data/sample_source.h"

namespace md::data {

struct Batch {
  Tensor images;                      // float32 (B, C, H, W) on the CPU, augmented and normalized
  Tensor labels;                      // int32 (B) on the CPU
  std::vector<std::int64_t> indices;  // (B) source indices into the ImageSet
};

enum class Shuffle { Off, On };
enum class Remainder { Keep, Drop };

// Data parallelism. batch_size is the PER-RANK batch; every rank has the same
// batches_per_epoch(), and the parts of all ranks are disjoint.
// - Sources in memory (no block_sizes()): the epoch order, a permutation of all samples, the same
//   on every rank, is cut into global batches of batch_size * world_size samples; rank r takes
//   the r-th contiguous part of each global batch, so the parts cover the epoch
//   (Remainder::Keep). The last, partial global batch (Keep) of n samples is split into parts of
//   n * r / world_size .. n * (r + 1) / world_size: sizes differ by at most one, and a rank's part
//   is empty (a batch of 0 samples) when n < world_size. Remainder::Drop drops it.
// - Block sources (shards read whole): the blocks are permuted by (seed, epoch) and concatenated;
//   rank r takes the contiguous range [N * r / W, N * (r + 1) / W) of that stream (so each rank
//   reads about blocks/W whole shards, each once) and shuffles it within windows of
//   window_blocks blocks' worth of samples, seeded by (seed, epoch, rank). Batches are cut from
//   the rank's range; batches_per_epoch = ceil(ceil(N / W) / batch) with Keep (a rank whose range
//   is one shorter may get a last batch one shorter) and floor(floor(N / W) / batch) with Drop.
//   With Shuffle::Off nothing is permuted: evaluation reads the shards in order.
struct LoaderSpec {
  std::int64_t batch_size = 128;  // per rank
  Shuffle shuffle = Shuffle::On;
  int window_blocks = 4;  // block sources: blocks whose samples are shuffled together, >= 1
  std::uint64_t seed = 0;
  Remainder remainder = Remainder::Keep;
  int rank = 0;
  int world_size = 1;
  int prefetch_batches = 4;  // batches assembled ahead (in flight or ready), >= 1
  int threads = 1;           // worker threads, each assembling whole batches, >= 1
};

// The order of one epoch: a permutation of [0, count) seeded by (seed, epoch) (the identity when
// shuffle is Off), the same on every rank and every rerun.
std::vector<std::int64_t> epoch_order(std::int64_t count, std::uint64_t seed, std::int64_t epoch,
                                      Shuffle shuffle);

// The seed of the Rng stream family used for the augmentation of one epoch; the Rng of a sample
// is Rng(augment_seed(seed, epoch), source_index).
std::uint64_t augment_seed(std::uint64_t seed, std::int64_t epoch);

// In-memory sources (no block_sizes()): the batches of one epoch, and the positions [begin, end)
// in the epoch order that rank spec.rank takes for batch `batch_index` (see LoaderSpec). Shared
// with the trainer's device-resident batches, so both cut the same parts.
std::int64_t in_memory_batches_per_epoch(std::int64_t count, const LoaderSpec& spec);
struct OrderRange {
  std::int64_t begin = 0;
  std::int64_t end = 0;
};
OrderRange in_memory_batch_range(std::int64_t count, const LoaderSpec& spec,
                                 std::int64_t batch_index);

class BatchLoader {
 public:
  BatchLoader(const SampleSource& source, const LoaderSpec& spec);  // keeps a reference to source
  ~BatchLoader();  // joins the workers, never throws
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  std::int64_t batches_per_epoch() const { return batches_per_epoch_; }

  // Starts (or restarts) an epoch; first_batch > 0 resumes mid-epoch at that batch index.
  // Batches still being assembled for a previous epoch are discarded.
  void start_epoch(std::int64_t epoch, std::int64_t first_batch = 0);

  // The next batch of the epoch; false at its end. Rethrows a worker's exception (e.g. the
  // InputError for a label outside [0, num_classes)) when the consumer reaches that batch.
  bool next(Batch& batch);

  // Index of the next batch within the epoch (what a checkpoint stores to resume).
  std::int64_t position() const;

  // Samples skipped because the source could not render them, since construction.
  std::int64_t skipped_samples() const;

 private:
  struct EpochPlan;

  void worker_loop();
  void stop_workers() noexcept;
  bool can_claim() const;  // with mutex_ held
  // Returns the number of samples skipped (not renderable) in this batch.
  std::int64_t assemble(const EpochPlan& plan, std::int64_t batch_index, Batch& batch) const;

  const SampleSource& source_;
  LoaderSpec spec_;
  std::vector<std::int64_t> block_sizes_;  // empty: an in-memory source
  std::int64_t batches_per_epoch_ = 0;

  mutable std::mutex mutex_;
  std::condition_variable work_available_;
  std::condition_variable batch_ready_;
  std::shared_ptr<const EpochPlan> plan_;  // null before the first start_epoch
  std::int64_t position_ = 0;              // next batch handed out by next()
  std::int64_t next_claim_ = 0;            // next batch a worker will assemble
  std::map<std::int64_t, Batch> ready_;    // assembled batches by index
  std::int64_t failed_batch_ = -1;         // first batch whose assembly threw, or -1
  std::exception_ptr failure_;
  std::int64_t skipped_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace md::data
