// metadistill pack-imagenet: packs the ILSVRC2012 tree into HDF5 shards of JPEG bytes
// (io/imagenet_pack.h), and verifies a pack (--verify), decoding every record with
// md::data::check_jpeg. Progress goes to stderr; the verify summary and the corrupt records to
// stdout. Corrupt images are warnings (the loader skips them), a damaged shard is an error.
#include <boost/program_options.hpp>
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "core/logging.h"
#include "data/jpeg.h"
#include "io/imagenet_pack.h"

namespace md::cli {

namespace po = boost::program_options;

namespace {

constexpr const char* kPackUsage =
    "usage: metadistill pack-imagenet SRC DST [--shards N] [--records-per-shard R] "
    "[--val-labels FILE] [--verify]\n"
    "       metadistill pack-imagenet --verify DST\n";

void print_progress(const std::string& line) {
  std::cerr << line << std::endl;
}

int verify(const std::string& root) {
  io::ImagenetVerifyOptions options;
  options.check = [](const std::uint8_t* bytes, std::size_t size) {
    return data::check_jpeg(bytes, size);
  };
  options.progress = print_progress;
  const io::ImagenetVerifyReport report = io::verify_imagenet_pack(root, options);
  std::int64_t records = 0;
  for (const io::ImagenetVerifySplit& split : report.splits) {
    records += split.records;
    std::cout << "verified " << io::imagenet_split_name(split.split) << ": " << split.shards
              << " shards, " << split.records << " images, " << split.bytes << " bytes\n";
  }
  for (const io::ImagenetCorruptRecord& record : report.corrupt) {
    std::cout << "corrupt: " << record.name << " (" << record.shard_file << "): " << record.reason
              << "\n";
  }
  std::cout << "corrupt images: " << report.corrupt.size() << " of " << records << std::endl;
  if (!report.corrupt.empty()) {
    log_warning(report.corrupt.size(), " corrupt images in ", root, " (the loader skips them)");
  }
  return 0;
}

}  // namespace

int pack_command(const Arguments& arguments) {
  std::vector<std::string> directories;
  io::ImagenetPackOptions options;
  po::options_description options_description("metadistill pack-imagenet");
  options_description.add_options()("help,h", "show this help")(
      "shards", po::value(&options.plan.train_shards),
      "train shard count (default: about --records-per-shard images per shard)")(
      "records-per-shard", po::value(&options.plan.records_per_shard),
      "target images per shard when --shards is not given (default 1024); val uses train's")(
      "val-labels", po::value(&options.val_labels),
      "labels of a flat val/ (one wnid or 0-based class index per line, in sorted file-name "
      "order; default SRC/val_labels.txt)")(
      "verify", "check every shard and decode every image (after packing, or of DST alone)");
  po::options_description hidden;
  hidden.add_options()("directories", po::value(&directories), "SRC DST");
  po::options_description all;
  all.add(options_description).add(hidden);
  po::positional_options_description positional;
  positional.add("directories", 2);
  po::variables_map values;
  po::store(po::command_line_parser(arguments).options(all).positional(positional).run(), values);
  if (values.count("help")) {
    std::cout << kPackUsage << "\n" << options_description << "\n";
    return 0;
  }
  po::notify(values);
  const bool verify_requested = values.count("verify") > 0;
  if (verify_requested && directories.size() == 1) return verify(directories[0]);
  if (directories.size() != 2) {
    throw InputError(detail::concat("expected SRC and DST directories\n", kPackUsage));
  }
  options.source = directories[0];
  options.destination = directories[1];
  options.progress = print_progress;
  const io::ImagenetPackSummary summary = io::pack_imagenet(options);
  std::cerr << "packed " << summary.records << " images (" << summary.bytes << " bytes) into "
            << options.destination << ": " << summary.shards_written << " shards written, "
            << summary.shards_kept << " already complete" << std::endl;
  return verify_requested ? verify(options.destination) : 0;
}

}  // namespace md::cli
