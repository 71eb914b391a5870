// CIFAR-100 binary reader (see cifar100.h).
#include "data/cifar100.h"

#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "data/file_bytes.h"

namespace md::data {
namespace {

constexpr int kChannels = 3;
constexpr int kSide = 32;
constexpr std::size_t kImageBytes = kChannels * kSide * kSide;
constexpr std::size_t kRecordBytes = 2 + kImageBytes;
constexpr int kFineClasses = 100;
constexpr int kCoarseClasses = 20;

std::string find_split_file(const std::string& root, Split split) {
  const std::string name = split == Split::Train ? "train.bin" : "test.bin";
  const std::filesystem::path direct = std::filesystem::path(root) / name;
  const std::filesystem::path nested = std::filesystem::path(root) / "cifar-100-binary" / name;
  if (std::filesystem::exists(direct)) return direct.string();
  if (std::filesystem::exists(nested)) return nested.string();
  throw InputError(md::detail::concat("CIFAR-100 file not found: neither ", direct.string(),
                                      " nor ", nested.string(), " exists"));
}

}  // namespace

ImageSet load_cifar100(const std::string& root, Split split) {
  const std::string path = find_split_file(root, split);
  const std::vector<std::uint8_t> bytes = detail::read_file_bytes(path);
  MD_INPUT_CHECK(!bytes.empty() && bytes.size() % kRecordBytes == 0, "CIFAR-100 file ", path,
                 " has ", bytes.size(), " bytes, not a whole positive number of ", kRecordBytes,
                 "-byte records");
  const std::size_t count = bytes.size() / kRecordBytes;

  ImageSet set;
  set.count = static_cast<std::int64_t>(count);
  set.channels = kChannels;
  set.height = kSide;
  set.width = kSide;
  set.num_classes = kFineClasses;
  set.source = path;
  set.pixels.resize(count * kImageBytes);
  set.labels.resize(count);
  for (std::size_t record = 0; record < count; ++record) {
    const std::uint8_t* data = bytes.data() + record * kRecordBytes;
    const int coarse_label = data[0];
    const int fine_label = data[1];
    MD_INPUT_CHECK(coarse_label < kCoarseClasses, "CIFAR-100 file ", path, ": record ", record,
                   " has coarse label ", coarse_label, " (must be < ", kCoarseClasses, ")");
    MD_INPUT_CHECK(fine_label < kFineClasses, "CIFAR-100 file ", path, ": record ", record,
                   " has fine label ", fine_label, " (must be < ", kFineClasses, ")");
    set.labels[record] = fine_label;
    std::memcpy(set.pixels.data() + record * kImageBytes, data + 2, kImageBytes);
  }
  return set;
}

}  // namespace md::data
