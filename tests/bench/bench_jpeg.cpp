// Rendering one ImageNet sample on one thread (decode + transform + normalize), the work each
// loader thread repeats: train (RandomResizedCrop 224 + flip) and eval (resize 256, center crop
// 224), on synthetic JPEGs of ImageNet's typical sizes (500x375, 375x500) at quality 90. The
// pictures carry photo-like detail (texture noise, edges, gradients) so that their files are
// about as large as ImageNet's (~100 KB): smooth pictures decode much faster than photos. The
// whole-image decode is timed too, as the reference the crop and DCT-scaling paths save against.
// items_per_second is images per second per thread.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "data/imagenet_transform.h"
#include "data/jpeg.h"
#include "support/jpeg_writer.h"

namespace {

using md::data::JpegPhase;

const std::vector<std::uint8_t>& test_jpeg(bool portrait) {
  static const std::vector<std::uint8_t> landscape_bytes =
      md::test::encode_jpeg(md::test::make_photo_like_image(500, 375, 1), 90);
  static const std::vector<std::uint8_t> portrait_bytes =
      md::test::encode_jpeg(md::test::make_photo_like_image(375, 500, 2), 90);
  return portrait ? portrait_bytes : landscape_bytes;
}

void render(benchmark::State& state, JpegPhase phase, bool portrait) {
  const std::vector<std::uint8_t>& bytes = test_jpeg(portrait);
  md::data::JpegTransform transform;
  transform.phase = phase;
  const md::data::JpegRenderer renderer(transform);
  std::vector<float> out(static_cast<std::size_t>(renderer.shape().numel()));
  std::uint64_t sample = 0;
  for (auto _ : state) {
    md::Rng rng(7, sample++);
    const std::string error = renderer.render(bytes.data(), bytes.size(), rng, out.data());
    if (!error.empty()) state.SkipWithError(error.c_str());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["jpeg_kb"] = static_cast<double>(bytes.size()) / 1024.0;
}

void BM_RenderTrain_500x375(benchmark::State& state) {
  render(state, JpegPhase::Train, false);
}
void BM_RenderTrain_375x500(benchmark::State& state) {
  render(state, JpegPhase::Train, true);
}
void BM_RenderEval_500x375(benchmark::State& state) {
  render(state, JpegPhase::Eval, false);
}
void BM_RenderEval_375x500(benchmark::State& state) {
  render(state, JpegPhase::Eval, true);
}

void BM_DecodeWhole_500x375(benchmark::State& state) {
  const std::vector<std::uint8_t>& bytes = test_jpeg(false);
  md::data::DecodedImage image;
  for (auto _ : state) {
    const std::string error = md::data::decode_jpeg(bytes.data(), bytes.size(), image);
    if (!error.empty()) state.SkipWithError(error.c_str());
    benchmark::DoNotOptimize(image.pixels.data());
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_RenderTrain_500x375)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RenderTrain_375x500)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RenderEval_500x375)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RenderEval_375x500)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeWhole_500x375)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
