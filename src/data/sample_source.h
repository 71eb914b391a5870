// SampleSource: what the batch loader draws samples from. A source knows how many samples it has,
// the shape of a rendered sample, and how to render one (decode, augment, normalize) into float32
// CHW given that sample's own Rng. The loader owns epochs, orders, ranks, threads and prefetch;
// a source owns the pixels and the transform. Two kinds exist: ImageSetSource (a whole set
// decoded in memory: CIFAR-100, IDX) and JpegShardSource (ILSVRC2012 shards of JPEG bytes,
// decoded on the loader's worker threads). render() must be safe to call from several threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"

namespace md::data {

struct SampleShape {
  int channels = 0;
  int height = 0;
  int width = 0;
  std::int64_t numel() const { return static_cast<std::int64_t>(channels) * height * width; }
};

// The outcome of rendering one sample. A sample that cannot be rendered (a corrupt JPEG) is
// not an exception: ok is false and error says which record and why; the loader skips it,
// counts it and logs a warning.
struct RenderResult {
  bool ok = false;
  std::int32_t label = -1;
  std::string error;
};

class SampleSource {
 public:
  virtual ~SampleSource() = default;

  virtual std::int64_t count() const = 0;
  virtual int num_classes() const = 0;
  virtual SampleShape shape() const = 0;               // of a rendered sample
  virtual const std::string& description() const = 0;  // where the samples come from, for messages

  // Consecutive runs of sample indices that are read together (the shards of a packed set), in
  // index order; their sizes sum to count(). Empty when every sample is equally cheap to reach
  // (a set in memory). The loader keeps each rank's reading within a few blocks at a time.
  virtual std::vector<std::int64_t> block_sizes() const { return {}; }

  // Renders sample `index` (in [0, count())) into out: (C, H, W) float32 of shape(), drawing every
  // random choice from rng (seeded by the loader per epoch and sample).
  virtual RenderResult render(std::int64_t index, Rng& rng, float* out) const = 0;
};

}  // namespace md::data
