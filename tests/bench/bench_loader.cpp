// The ImageNet input pipeline as a trial runs it: packed shards (HDF5) -> JpegShardSource ->
// BatchLoader on N worker threads (decode + RandomResizedCrop 224 + flip + normalize, batches of
// 64), built by train::load_trial_data from an imagenet trial config exactly as the trainer does.
// The data: a synthetic tree of photo-like JPEGs of ImageNet's typical sizes (500x375 and
// 375x500, quality 90, ~80 KB; real photos decode a little slower), packed once into a temporary
// directory. items_per_second is decoded images per second for the whole loader; compare it
// with the training step's images/s (`metadistill bench --arch resnet18 --image-size 224`):
// DESIGN.md §9 wants the loader at least 2x the step.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "data/loader.h"
#include "io/config.h"
#include "io/imagenet_pack.h"
#include "support/jpeg_writer.h"
#include "train/trial_data.h"

namespace {

namespace fs = std::filesystem;

constexpr int kClasses = 4;
constexpr int kImagesPerClass = 64;

// The synthetic tree packed once per process into a temporary directory, removed at exit.
struct PackedTree {
  fs::path base = fs::temp_directory_path() / ("md_bench_loader_" + std::to_string(getpid()));
  std::string root = pack(base);
  ~PackedTree() {
    std::error_code ignored;
    fs::remove_all(base, ignored);
  }
  static std::string pack(const fs::path& base) {
    for (int c = 0; c < kClasses; ++c) {
      const std::string wnid = "n0000000" + std::to_string(c);
      for (const char* split : {"train", "val"}) {
        const fs::path dir = base / "src" / split / wnid;
        fs::create_directories(dir);
        const int count = std::string(split) == "train" ? kImagesPerClass : 2;
        for (int i = 0; i < count; ++i) {
          const bool portrait = i % 3 == 0;
          const auto seed = static_cast<std::uint64_t>(1000 * c + i);
          md::test::write_file(
              (dir / (wnid + "_" + std::to_string(i) + ".JPEG")).string(),
              md::test::encode_jpeg(
                  md::test::make_photo_like_image(portrait ? 375 : 500, portrait ? 500 : 375, seed),
                  90));
        }
      }
    }
    md::io::ImagenetPackOptions options;
    options.source = (base / "src").string();
    options.destination = (base / "shards").string();
    options.plan.records_per_shard = 32;
    md::io::pack_imagenet(options);
    fs::remove_all(base / "src");
    return options.destination;
  }
};

const std::string& shard_root() {
  static const PackedTree tree;
  return tree.root;
}

void BM_ImagenetLoader(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const md::io::TrialConfig config = md::io::parse_trial_config(
      "dataset: {name: imagenet, root: " + shard_root() + "}\nmethod: {name: baseline}\n", "bench");
  const std::unique_ptr<md::train::TrialData> data = md::train::load_trial_data(config);
  md::data::LoaderSpec spec;
  spec.batch_size = 64;
  spec.threads = threads;
  spec.prefetch_batches = 2 * threads;
  spec.remainder = md::data::Remainder::Drop;
  md::data::BatchLoader loader(*data->train, spec);
  std::int64_t images = 0, epoch = 0;
  md::data::Batch batch;
  loader.start_epoch(epoch);
  for (auto _ : state) {
    if (!loader.next(batch)) {
      loader.start_epoch(++epoch);
      if (!loader.next(batch)) state.SkipWithError("empty epoch");
    }
    images += batch.labels.numel();
    benchmark::DoNotOptimize(batch.images.raw_data());
  }
  state.SetItemsProcessed(images);
  state.counters["threads"] = threads;
}

}  // namespace

BENCHMARK(BM_ImagenetLoader)
    ->DenseRange(1, static_cast<int>(std::max(1U, std::thread::hardware_concurrency())))
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
