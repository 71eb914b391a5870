// Synthetic ImageNet trees for the pack-imagenet tests (see imagenet_tree.h). File extensions
// vary (.JPEG, .jpg, .jpeg) as in real-world copies of the data set, and flat val labels are
// interleaved over the classes so that a wrong label mapping shows.
#include "support/imagenet_tree.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "support/jpeg_writer.h"

namespace md::test {

namespace {

namespace fs = std::filesystem;

std::string wnid_of(int class_index) {
  char text[16] = {};
  std::snprintf(text, sizeof text, "n0144%04d", class_index * 7 + 1);
  return text;
}

const char* extension_of(int image_index) {
  switch (image_index % 5) {
    case 3:
      return ".jpg";
    case 4:
      return ".jpeg";
    default:
      return ".JPEG";
  }
}

std::vector<std::uint8_t> image_bytes(std::uint64_t seed) {
  const int width = 40 + static_cast<int>((seed * 13) % 81);
  const int height = 40 + static_cast<int>((seed * 29) % 81);
  const JpegColor color = seed % 5 == 2 ? JpegColor::Gray : JpegColor::Rgb;
  return encode_jpeg(make_test_image(width, height, color, seed), 70 + static_cast<int>(seed % 25));
}

std::vector<std::uint8_t> corrupt_bytes(int corrupt_index, std::uint64_t seed) {
  if (corrupt_index % 2 == 0) {
    std::vector<std::uint8_t> bytes = image_bytes(seed);
    bytes.resize(bytes.size() * 6 / 10);
    return bytes;
  }
  std::vector<std::uint8_t> garbage(300 + static_cast<std::size_t>(seed % 200));
  for (std::size_t i = 0; i < garbage.size(); ++i) {
    garbage[i] = static_cast<std::uint8_t>((i * 131 + seed * 7) % 251);
  }
  return garbage;
}

void make_directory(const fs::path& path) {
  std::error_code error;
  fs::create_directories(path, error);
  if (error) throw std::runtime_error(path.string() + ": " + error.message());
}

}  // namespace

ImagenetTree write_imagenet_tree(const std::string& dir, const ImagenetTreeSpec& spec) {
  ImagenetTree tree;
  const fs::path root(dir);
  std::uint64_t image_seed = spec.seed * 1000003 + 1;
  for (int c = 0; c < spec.classes; ++c) tree.classes.push_back(wnid_of(c));

  int corrupt_written = 0;
  for (int c = 0; c < spec.classes; ++c) {
    const std::string& wnid = tree.classes[static_cast<std::size_t>(c)];
    make_directory(root / "train" / wnid);
    for (int i = 0; i < spec.train_per_class; ++i) {
      const std::string name =
          "train/" + wnid + "/" + wnid + "_" + std::to_string(i) + extension_of(i + c);
      // Corrupt files: the last image of classes 0, 1, 2, ... in turn.
      const bool corrupt = i == spec.train_per_class - 1 && c < spec.corrupt_files;
      write_file((root / name).string(),
                 corrupt ? corrupt_bytes(corrupt_written, image_seed) : image_bytes(image_seed));
      ++image_seed;
      if (corrupt) {
        tree.corrupt.push_back(name);
        ++corrupt_written;
      }
      tree.class_of[name] = wnid;
    }
  }
  if (corrupt_written != spec.corrupt_files) {
    throw std::runtime_error("write_imagenet_tree: corrupt_files exceeds the number of classes");
  }

  if (spec.val_layout == ValLayout::None) return tree;
  if (spec.val_layout == ValLayout::PerClassDirs) {
    for (int c = 0; c < spec.classes; ++c) {
      const std::string& wnid = tree.classes[static_cast<std::size_t>(c)];
      make_directory(root / "val" / wnid);
      for (int i = 0; i < spec.val_per_class; ++i) {
        const std::string name = "val/" + wnid + "/val_" + std::to_string(i) + extension_of(i);
        write_file((root / name).string(), image_bytes(image_seed++));
        tree.class_of[name] = wnid;
      }
    }
    return tree;
  }
  make_directory(root / "val");
  tree.val_labels = (root / "val_labels.txt").string();
  std::ofstream labels(tree.val_labels);
  const int total = spec.classes * spec.val_per_class;
  for (int k = 0; k < total; ++k) {
    char file[64] = {};
    std::snprintf(file, sizeof file, "ILSVRC2012_val_%08d.JPEG", k + 1);
    const int class_index = (k * 7 + 1) % spec.classes;
    const std::string name = std::string("val/") + file;
    write_file((root / name).string(), image_bytes(image_seed++));
    tree.class_of[name] = tree.classes[static_cast<std::size_t>(class_index)];
    if (spec.val_layout == ValLayout::FlatWithWnidLabels) {
      labels << tree.classes[static_cast<std::size_t>(class_index)] << "\n";
    } else {
      labels << class_index << "\n";
    }
  }
  if (!labels) throw std::runtime_error(tree.val_labels + ": write failed");
  return tree;
}

}  // namespace md::test
