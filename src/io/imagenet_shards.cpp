// The ImageNet shard format of io/imagenet_shards.h: hashes, the manifest (yaml-cpp), shard files
// (HDF5 through io/h5_handle.h), the reader and node-local staging. HDF5 calls run under an
// ApiGuard; the bulk /jpeg read does not: the dataset is contiguous, so its file address is
// taken under the lock and the bytes are read with pread() outside it, letting loader threads
// read shards in parallel. Nothing here decodes images or knows the source tree (imagenet_pack).
#include "io/imagenet_shards.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "core/hash.h"
#include "core/logging.h"
#include "io/h5_handle.h"

namespace md::io {

static_assert(std::endian::native == std::endian::little,
              "the shard hashes are defined on little-endian words");

namespace fs = std::filesystem;

const char* imagenet_split_name(ImagenetSplit split) {
  return split == ImagenetSplit::Train ? "train" : "val";
}

// ---- hashes

namespace {
constexpr std::uint64_t kHashMultiplier1 = 0x87c37b91114253d5ULL;
constexpr std::uint64_t kHashMultiplier2 = 0x4cf5ad432745937fULL;

std::uint64_t mix_word(std::uint64_t hash, std::uint64_t word) {
  return std::rotl(hash ^ (word * kHashMultiplier1), 31) * kHashMultiplier2;
}

std::uint64_t splitmix_finalize(std::uint64_t value) {
  value = (value ^ (value >> 30)) * 0xbf58476d1ce4e5b9ULL;
  value = (value ^ (value >> 27)) * 0x94d049bb133111ebULL;
  return value ^ (value >> 31);
}

template <typename T>
std::uint64_t hash_vector(const std::vector<T>& values, std::uint64_t seed) {
  return imagenet_hash64(values.data(), values.size() * sizeof(T), seed);
}

template <typename T>
std::uint64_t hash_value(const T& value, std::uint64_t seed) {
  return imagenet_hash64(&value, sizeof value, seed);
}

std::uint64_t plan_hash_prefix(ImagenetSplit split, std::int64_t shard_index,
                               std::int64_t shard_count) {
  std::uint64_t hash = hash_value(kImagenetShardSchemaVersion, 0);
  const char* name = imagenet_split_name(split);
  hash = imagenet_hash64(name, std::strlen(name), hash);
  hash = hash_value(shard_index, hash);
  return hash_value(shard_count, hash);
}

std::uint64_t plan_hash_record(const std::string& name, std::int64_t size, std::int32_t label,
                               std::uint64_t hash) {
  hash = imagenet_hash64(name.data(), name.size(), hash);
  hash = hash_value(size, hash);
  return hash_value(label, hash);
}

std::uint64_t parse_hex_hash(const std::string& text, const std::string& source,
                             const std::string& key) {
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [pointer, error] = std::from_chars(text.data(), end, value, 16);
  MD_INPUT_CHECK(text.size() == 16 && error == std::errc() && pointer == end, source, ": ", key,
                 " must be 16 hex digits, got '", text, "'");
  return value;
}
}  // namespace

std::uint64_t imagenet_hash64(const void* data, std::size_t size, std::uint64_t seed) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  std::uint64_t hash = seed ^ 0x9e3779b97f4a7c15ULL;
  const std::size_t whole_words = size / 8;
  for (std::size_t i = 0; i < whole_words; ++i) {
    std::uint64_t word = 0;
    std::memcpy(&word, bytes + 8 * i, 8);
    hash = mix_word(hash, word);
  }
  const std::size_t tail = size % 8;
  if (tail != 0) {
    std::uint64_t word = 0;
    std::memcpy(&word, bytes + 8 * whole_words, tail);
    hash = mix_word(hash, word);
  }
  return splitmix_finalize(hash ^ static_cast<std::uint64_t>(size));
}

std::uint64_t imagenet_content_checksum(const ImagenetShardContents& contents) {
  std::uint64_t hash = hash_vector(contents.labels, 0);
  hash = hash_vector(contents.offsets, hash);
  return hash_vector(contents.bytes, hash);
}

std::uint64_t imagenet_plan_hash(ImagenetSplit split, std::int64_t shard_index,
                                 std::int64_t shard_count,
                                 const std::vector<ImagenetRecordKey>& records) {
  std::uint64_t hash = plan_hash_prefix(split, shard_index, shard_count);
  for (const ImagenetRecordKey& record : records) {
    hash = plan_hash_record(record.name, record.size, record.label, hash);
  }
  return hash;
}

std::uint64_t imagenet_plan_hash(ImagenetSplit split, std::int64_t shard_index,
                                 std::int64_t shard_count, const ImagenetShardContents& contents) {
  MD_CHECK(contents.offsets.size() == contents.labels.size() + 1 &&
           contents.names.size() == contents.labels.size());
  std::uint64_t hash = plan_hash_prefix(split, shard_index, shard_count);
  for (std::size_t i = 0; i < contents.labels.size(); ++i) {
    hash = plan_hash_record(contents.names[i], contents.offsets[i + 1] - contents.offsets[i],
                            contents.labels[i], hash);
  }
  return hash;
}

std::string hash_to_hex(std::uint64_t hash) {
  return hex16(hash);
}

std::string imagenet_shard_file_name(ImagenetSplit split, std::int64_t shard_index,
                                     std::int64_t shard_count) {
  char text[64] = {};
  std::snprintf(text, sizeof text, "%s-%05lld-of-%05lld.h5", imagenet_split_name(split),
                static_cast<long long>(shard_index), static_cast<long long>(shard_count));
  return text;
}

// ---- files

namespace {

void sync_path(const std::string& path, int flags) {
  int descriptor = ::open(path.c_str(), flags | O_CLOEXEC);
  if (descriptor < 0) {
    throw Error(detail::concat(path, ": open for fsync failed: ", std::strerror(errno)));
  }
  int status = ::fsync(descriptor);
  int saved_errno = errno;
  ::close(descriptor);
  if (status != 0) {
    throw Error(detail::concat(path, ": fsync failed: ", std::strerror(saved_errno)));
  }
}

void sync_parent_directory(const std::string& path) {
  fs::path directory = fs::path(path).parent_path();
  sync_path(directory.empty() ? "." : directory.string(), O_RDONLY | O_DIRECTORY);
}

// fsyncs `temporary` and renames it to `path`: the commit of a tmp + rename write.
void commit_file(const std::string& temporary, const std::string& path) {
  sync_path(temporary, O_RDONLY);
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    throw Error(
        detail::concat("renaming ", temporary, " to ", path, " failed: ", std::strerror(errno)));
  }
  sync_parent_directory(path);
}

}  // namespace

// ---- manifest

const ImagenetSplitManifest* ImagenetManifest::find(ImagenetSplit split) const {
  for (const ImagenetSplitManifest& entry : splits) {
    if (entry.split == split) return &entry;
  }
  return nullptr;
}

std::string imagenet_manifest_path(const std::string& root) {
  return (fs::path(root) / kImagenetManifestName).string();
}

namespace {

YAML::Node required_key(const YAML::Node& map, const std::string& key, const std::string& source,
                        const std::string& path) {
  MD_INPUT_CHECK(map.IsMap(), source, ": '", path, "' must be a map");
  YAML::Node value = map[key];
  MD_INPUT_CHECK(value.IsDefined() && !value.IsNull(), source, ": key '", path,
                 path.empty() ? "" : ".", key, "' is missing");
  return value;
}

template <typename T>
T scalar_as(const YAML::Node& node, const std::string& source, const std::string& path) {
  MD_INPUT_CHECK(node.IsScalar(), source, ": '", path, "' must be a scalar");
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    throw InputError(
        detail::concat(source, ": '", path, "' has a bad value '", node.Scalar(), "'"));
  }
}

ImagenetSplitManifest parse_split(const YAML::Node& node, ImagenetSplit split,
                                  const std::string& source) {
  const std::string path = detail::concat("splits.", imagenet_split_name(split));
  ImagenetSplitManifest manifest;
  manifest.split = split;
  manifest.count =
      scalar_as<std::int64_t>(required_key(node, "count", source, path), source, path + ".count");
  YAML::Node shards = required_key(node, "shards", source, path);
  MD_INPUT_CHECK(shards.IsSequence() && shards.size() > 0, source, ": '", path,
                 ".shards' must be a non-empty list");
  const auto shard_count = static_cast<std::int64_t>(shards.size());
  std::int64_t total = 0;
  for (std::int64_t i = 0; i < shard_count; ++i) {
    const std::string entry_path = detail::concat(path, ".shards[", i, "]");
    const YAML::Node entry = shards[static_cast<std::size_t>(i)];
    ImagenetShardEntry shard;
    shard.file = scalar_as<std::string>(required_key(entry, "file", source, entry_path), source,
                                        entry_path + ".file");
    const std::string expected_file = imagenet_shard_file_name(split, i, shard_count);
    MD_INPUT_CHECK(shard.file == expected_file, source, ": '", entry_path, ".file' is '",
                   shard.file, "', expected '", expected_file, "'");
    shard.count = scalar_as<std::int64_t>(required_key(entry, "count", source, entry_path), source,
                                          entry_path + ".count");
    shard.bytes = scalar_as<std::int64_t>(required_key(entry, "bytes", source, entry_path), source,
                                          entry_path + ".bytes");
    MD_INPUT_CHECK(shard.count > 0 && shard.bytes > 0, source, ": '", entry_path,
                   "' needs a positive count and bytes");
    shard.checksum =
        parse_hex_hash(scalar_as<std::string>(required_key(entry, "checksum", source, entry_path),
                                              source, entry_path + ".checksum"),
                       source, entry_path + ".checksum");
    total += shard.count;
    manifest.shards.push_back(std::move(shard));
  }
  MD_INPUT_CHECK(total == manifest.count, source, ": '", path, ".count' is ", manifest.count,
                 " but its shards hold ", total, " records");
  return manifest;
}

}  // namespace

ImagenetManifest read_imagenet_manifest(const std::string& root) {
  const std::string source = imagenet_manifest_path(root);
  MD_INPUT_CHECK(fs::is_regular_file(source), source,
                 ": no such file (not a complete pack-imagenet output directory)");
  YAML::Node document;
  try {
    document = YAML::LoadFile(source);
  } catch (const YAML::Exception& error) {
    throw InputError(detail::concat(source, ": not valid YAML: ", error.what()));
  }
  MD_INPUT_CHECK(document.IsMap(), source, ": expected a map at the top level");
  ImagenetManifest manifest;
  manifest.format_version = scalar_as<std::int64_t>(
      required_key(document, "format_version", source, ""), source, "format_version");
  check_schema_version(FileKind::ImagenetManifest, source, manifest.format_version);
  YAML::Node classes = required_key(document, "classes", source, "");
  MD_INPUT_CHECK(classes.IsSequence() && classes.size() > 0, source,
                 ": 'classes' must be a non-empty list");
  for (std::size_t i = 0; i < classes.size(); ++i) {
    manifest.classes.push_back(
        scalar_as<std::string>(classes[i], source, detail::concat("classes[", i, "]")));
  }
  YAML::Node splits = required_key(document, "splits", source, "");
  MD_INPUT_CHECK(splits.IsMap(), source, ": 'splits' must be a map");
  for (const auto& pair : splits) {
    const std::string name = pair.first.as<std::string>();
    MD_INPUT_CHECK(name == "train" || name == "val", source, ": unknown split 'splits.", name,
                   "' (expected train or val)");
  }
  for (ImagenetSplit split : {ImagenetSplit::Train, ImagenetSplit::Val}) {
    YAML::Node node = splits[imagenet_split_name(split)];
    if (node.IsDefined() && !node.IsNull()) {
      manifest.splits.push_back(parse_split(node, split, source));
    }
  }
  return manifest;
}

void write_imagenet_manifest(const std::string& root, const ImagenetManifest& manifest) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "format_version" << YAML::Value << manifest.format_version;
  out << YAML::Key << "classes" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const std::string& name : manifest.classes) out << name;
  out << YAML::EndSeq;
  out << YAML::Key << "splits" << YAML::Value << YAML::BeginMap;
  for (const ImagenetSplitManifest& split : manifest.splits) {
    out << YAML::Key << imagenet_split_name(split.split) << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "count" << YAML::Value << split.count;
    out << YAML::Key << "shards" << YAML::Value << YAML::BeginSeq;
    for (const ImagenetShardEntry& shard : split.shards) {
      out << YAML::Flow << YAML::BeginMap;
      out << YAML::Key << "file" << YAML::Value << shard.file;
      out << YAML::Key << "count" << YAML::Value << shard.count;
      out << YAML::Key << "bytes" << YAML::Value << shard.bytes;
      out << YAML::Key << "checksum" << YAML::Value << YAML::DoubleQuoted
          << hash_to_hex(shard.checksum);
      out << YAML::EndMap;
    }
    out << YAML::EndSeq << YAML::EndMap;
  }
  out << YAML::EndMap << YAML::EndMap;
  MD_CHECK(out.good(), "manifest emitter: ", out.GetLastError());

  const std::string path = imagenet_manifest_path(root);
  const std::string temporary = path + ".tmp";
  {
    std::ofstream file(temporary, std::ios::binary | std::ios::trunc);
    file << out.c_str() << '\n';
    file.close();
    if (!file) {
      std::error_code ignored;
      fs::remove(temporary, ignored);
      throw Error(detail::concat(temporary, ": write failed: ", std::strerror(errno)));
    }
  }
  commit_file(temporary, path);
}

// ---- shard files

namespace {

constexpr const char* kJpegDataset = "jpeg";
constexpr const char* kOffsetsDataset = "offsets";
constexpr const char* kLabelsDataset = "labels";
constexpr const char* kNamesDataset = "names";

void check_contents_shape(const ImagenetShardContents& contents, const std::string& source) {
  const std::size_t count = contents.labels.size();
  MD_INPUT_CHECK(contents.offsets.size() == count + 1, source, ": /offsets has ",
                 contents.offsets.size(), " entries for ", count, " records (expected count + 1)");
  MD_INPUT_CHECK(contents.names.size() == count, source, ": /names has ", contents.names.size(),
                 " entries for ", count, " records");
  MD_INPUT_CHECK(contents.offsets.front() == 0, source, ": /offsets[0] is ",
                 contents.offsets.front(), ", expected 0");
  for (std::size_t i = 0; i < count; ++i) {
    MD_INPUT_CHECK(contents.offsets[i + 1] >= contents.offsets[i], source,
                   ": /offsets decrease at record ", i);
  }
  MD_INPUT_CHECK(contents.offsets.back() == static_cast<std::int64_t>(contents.bytes.size()),
                 source, ": /offsets end at ", contents.offsets.back(), " but /jpeg holds ",
                 contents.bytes.size(), " bytes");
}

h5::PropertyList untracked_dataset_creation(const h5::FileContext& file, std::string_view path) {
  h5::PropertyList creation(MD_H5(H5Pcreate(H5P_DATASET_CREATE), file, path));
  MD_H5(H5Pset_obj_track_times(creation.id(), false), file, path);
  MD_H5(H5Pset_layout(creation.id(), H5D_CONTIGUOUS), file, path);
  MD_H5(H5Pset_fill_time(creation.id(), H5D_FILL_TIME_NEVER), file, path);
  return creation;
}

void write_dataset_1d(hid_t root, const char* name, hid_t file_type, hid_t memory_type,
                      const void* data, std::size_t count, const h5::FileContext& file) {
  const std::string path = std::string("/") + name;
  hsize_t extent[1] = {static_cast<hsize_t>(count)};
  h5::Dataspace space(MD_H5(H5Screate_simple(1, extent, nullptr), file, path));
  h5::PropertyList creation = untracked_dataset_creation(file, path);
  h5::Dataset dataset(
      MD_H5(H5Dcreate2(root, name, file_type, space.id(), H5P_DEFAULT, creation.id(), H5P_DEFAULT),
            file, path));
  if (count > 0) {
    MD_H5(H5Dwrite(dataset.id(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), file, path);
  }
  dataset.close(file, path);
}

h5::Datatype names_type(std::size_t element_size, const h5::FileContext& file) {
  h5::Datatype type(MD_H5(H5Tcopy(H5T_C_S1), file, "/names"));
  MD_H5(H5Tset_size(type.id(), element_size), file, "/names");
  MD_H5(H5Tset_strpad(type.id(), H5T_STR_NULLPAD), file, "/names");
  MD_H5(H5Tset_cset(type.id(), H5T_CSET_UTF8), file, "/names");
  return type;
}

// The extent of a 1-D dataset of the given type class; InputError otherwise.
hsize_t extent_1d(const h5::Dataset& dataset, H5T_class_t expected_class,
                  const h5::FileContext& file, const std::string& path) {
  std::vector<hsize_t> extent = h5::dataset_extent(dataset, file, path);
  if (extent.size() != 1) h5::throw_file_error(file, path, "expected a 1-D dataset");
  h5::Datatype type(MD_H5(H5Dget_type(dataset.id()), file, path));
  if (H5Tget_class(type.id()) != expected_class) {
    h5::throw_file_error(file, path, "dataset has the wrong type class");
  }
  return extent[0];
}

h5::Dataset open_dataset(hid_t root, const char* name, const h5::FileContext& file) {
  const std::string path = std::string("/") + name;
  if (!h5::link_exists(root, name, file, path)) {
    h5::throw_file_error(file, path, "no such dataset (not an ImageNet shard)");
  }
  return h5::Dataset(MD_H5(H5Dopen2(root, name, H5P_DEFAULT), file, path));
}

ImagenetShardHeader parse_header(const AttributeMap& attributes, const std::string& source) {
  check_schema_version(FileKind::ImagenetShard, source,
                       attribute_int(attributes, kSchemaVersionAttribute, source));
  ImagenetShardHeader header;
  const std::string& split = attribute_string(attributes, "split", source);
  MD_INPUT_CHECK(split == "train" || split == "val", source, ": attribute 'split' is '", split,
                 "', expected train or val");
  header.split = split == "train" ? ImagenetSplit::Train : ImagenetSplit::Val;
  header.shard_index = attribute_int(attributes, "shard_index", source);
  header.shard_count = attribute_int(attributes, "shard_count", source);
  header.plan_hash =
      parse_hex_hash(attribute_string(attributes, "plan_hash", source), source, "plan_hash");
  header.checksum =
      parse_hex_hash(attribute_string(attributes, "checksum", source), source, "checksum");
  return header;
}

void pread_exact(const std::string& path, std::uint8_t* destination, std::size_t size,
                 std::int64_t file_offset) {
  int descriptor = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (descriptor < 0) {
    throw InputError(detail::concat(path, ": cannot open: ", std::strerror(errno)));
  }
  std::size_t done = 0;
  while (done < size) {
    ssize_t got = ::pread(descriptor, destination + done, size - done,
                          static_cast<off_t>(file_offset) + static_cast<off_t>(done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      int saved_errno = errno;
      ::close(descriptor);
      if (got == 0) {
        throw InputError(detail::concat(path, ": '/jpeg': truncated file (", done, " of ", size,
                                        " bytes readable)"));
      }
      throw InputError(
          detail::concat(path, ": '/jpeg': read failed: ", std::strerror(saved_errno)));
    }
    done += static_cast<std::size_t>(got);
  }
  ::close(descriptor);
}

}  // namespace

void write_imagenet_shard_file(const std::string& path, const ImagenetShardHeader& header,
                               const ImagenetShardContents& contents) {
  check_contents_shape(contents, path);
  MD_CHECK(header.checksum == imagenet_content_checksum(contents), path,
           ": header checksum does not match the contents");
  std::size_t name_size = 1;
  for (const std::string& name : contents.names) name_size = std::max(name_size, name.size());
  std::vector<char> name_buffer(contents.names.size() * name_size, '\0');
  for (std::size_t i = 0; i < contents.names.size(); ++i) {
    std::memcpy(name_buffer.data() + i * name_size, contents.names[i].data(),
                contents.names[i].size());
  }

  h5::ApiGuard guard;
  const std::string temporary = path + ".tmp";
  h5::FileContext file{temporary, h5::Blame::Library};
  h5::File handle = h5::create_file(file, h5::ObjectTimes::Untracked);
  try {
    const hid_t root = handle.id();
    write_dataset_1d(root, kJpegDataset, H5T_STD_U8LE, H5T_NATIVE_UINT8, contents.bytes.data(),
                     contents.bytes.size(), file);
    write_dataset_1d(root, kOffsetsDataset, H5T_STD_I64LE, H5T_NATIVE_INT64,
                     contents.offsets.data(), contents.offsets.size(), file);
    write_dataset_1d(root, kLabelsDataset, H5T_STD_I32LE, H5T_NATIVE_INT32, contents.labels.data(),
                     contents.labels.size(), file);
    h5::Datatype name_type = names_type(name_size, file);
    write_dataset_1d(root, kNamesDataset, name_type.id(), name_type.id(), name_buffer.data(),
                     contents.names.size(), file);
    h5::write_attribute(root, kSchemaVersionAttribute, kImagenetShardSchemaVersion, file, "/");
    h5::write_attribute(root, "split", std::string(imagenet_split_name(header.split)), file, "/");
    h5::write_attribute(root, "shard_index", header.shard_index, file, "/");
    h5::write_attribute(root, "shard_count", header.shard_count, file, "/");
    h5::write_attribute(root, "plan_hash", hash_to_hex(header.plan_hash), file, "/");
    h5::write_attribute(root, "checksum", hash_to_hex(header.checksum), file, "/");
    h5::flush_file(handle, file);
    handle.close(file, "");
    commit_file(temporary, path);
  } catch (...) {
    handle = h5::File();
    std::error_code ignored;
    fs::remove(temporary, ignored);
    throw;
  }
}

ImagenetShardHeader read_imagenet_shard_header(const std::string& path) {
  h5::ApiGuard guard;
  h5::FileContext file{path, h5::Blame::Input};
  h5::File handle = h5::open_file(file, h5::FileMode::ReadOnly);
  return parse_header(h5::read_attributes(handle.id(), file, "/"), path);
}

ImagenetShardContents read_imagenet_shard_file(const std::string& path,
                                               ImagenetShardHeader* header) {
  h5::FileContext file{path, h5::Blame::Input};
  ImagenetShardContents contents;
  haddr_t jpeg_address = HADDR_UNDEF;
  {
    h5::ApiGuard guard;
    h5::File handle = h5::open_file(file, h5::FileMode::ReadOnly);
    const hid_t root = handle.id();
    ImagenetShardHeader parsed = parse_header(h5::read_attributes(root, file, "/"), path);
    if (header != nullptr) *header = parsed;

    h5::Dataset labels = open_dataset(root, kLabelsDataset, file);
    contents.labels.resize(extent_1d(labels, H5T_INTEGER, file, "/labels"));
    if (!contents.labels.empty()) {
      MD_H5(H5Dread(labels.id(), H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                    contents.labels.data()),
            file, "/labels");
    }
    h5::Dataset offsets = open_dataset(root, kOffsetsDataset, file);
    contents.offsets.resize(extent_1d(offsets, H5T_INTEGER, file, "/offsets"));
    if (contents.offsets.empty()) h5::throw_file_error(file, "/offsets", "empty dataset");
    MD_H5(H5Dread(offsets.id(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                  contents.offsets.data()),
          file, "/offsets");

    h5::Dataset names = open_dataset(root, kNamesDataset, file);
    const hsize_t name_count = extent_1d(names, H5T_STRING, file, "/names");
    h5::Datatype stored_name_type(MD_H5(H5Dget_type(names.id()), file, "/names"));
    if (MD_H5(H5Tis_variable_str(stored_name_type.id()), file, "/names") > 0) {
      h5::throw_file_error(file, "/names", "expected fixed-length strings");
    }
    const std::size_t name_size = H5Tget_size(stored_name_type.id());
    if (name_size == 0) h5::throw_file_error(file, "/names", "string size 0");
    std::vector<char> name_buffer(static_cast<std::size_t>(name_count) * name_size, '\0');
    if (name_count > 0) {
      h5::Datatype memory_type = names_type(name_size, file);
      MD_H5(
          H5Dread(names.id(), memory_type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, name_buffer.data()),
          file, "/names");
    }
    contents.names.reserve(static_cast<std::size_t>(name_count));
    for (std::size_t i = 0; i < name_count; ++i) {
      const char* start = name_buffer.data() + i * name_size;
      contents.names.emplace_back(start, strnlen(start, name_size));
    }

    h5::Dataset jpeg = open_dataset(root, kJpegDataset, file);
    const hsize_t byte_count = extent_1d(jpeg, H5T_INTEGER, file, "/jpeg");
    h5::Datatype jpeg_type(MD_H5(H5Dget_type(jpeg.id()), file, "/jpeg"));
    if (H5Tget_size(jpeg_type.id()) != 1) {
      h5::throw_file_error(file, "/jpeg", "expected 1-byte elements");
    }
    contents.bytes.resize(static_cast<std::size_t>(byte_count));
    if (byte_count > 0) {
      jpeg_address = H5Dget_offset(jpeg.id());
      if (jpeg_address == HADDR_UNDEF) {
        MD_H5(H5Dread(jpeg.id(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                      contents.bytes.data()),
              file, "/jpeg");
      }
    }
  }
  if (jpeg_address != HADDR_UNDEF) {
    pread_exact(path, contents.bytes.data(), contents.bytes.size(),
                static_cast<std::int64_t>(jpeg_address));
  }
  check_contents_shape(contents, path);
  return contents;
}

// ---- reader

ImagenetShards::ImagenetShards(std::string root, ImagenetSplit split, ImagenetManifest manifest)
    : root_(std::move(root)), split_(split), manifest_(std::move(manifest)) {}

ImagenetShards ImagenetShards::open(const std::string& root, ImagenetSplit split) {
  ImagenetManifest manifest = read_imagenet_manifest(root);
  const ImagenetSplitManifest* entry = manifest.find(split);
  MD_INPUT_CHECK(entry != nullptr && !entry->shards.empty(), imagenet_manifest_path(root),
                 ": split '", imagenet_split_name(split), "' has no shards");
  return ImagenetShards(root, split, std::move(manifest));
}

const ImagenetSplitManifest& ImagenetShards::split_manifest() const {
  return *manifest_.find(split_);
}

std::vector<std::int64_t> ImagenetShards::shard_sizes() const {
  std::vector<std::int64_t> sizes;
  for (const ImagenetShardEntry& shard : split_manifest().shards) sizes.push_back(shard.count);
  return sizes;
}

std::int64_t ImagenetShards::num_shards() const {
  return static_cast<std::int64_t>(split_manifest().shards.size());
}

std::string ImagenetShards::shard_path(std::int64_t shard) const {
  MD_CHECK(shard >= 0 && shard < num_shards(), "shard ", shard, " out of range [0, ", num_shards(),
           ")");
  return (fs::path(root_) / split_manifest().shards[static_cast<std::size_t>(shard)].file).string();
}

ImagenetShardContents ImagenetShards::read(std::int64_t shard) const {
  const std::string path = shard_path(shard);
  const ImagenetShardEntry& entry = split_manifest().shards[static_cast<std::size_t>(shard)];
  std::error_code error;
  const auto file_size = fs::file_size(path, error);
  MD_INPUT_CHECK(!error, path, ": cannot read the shard: ", error.message());
  MD_INPUT_CHECK(static_cast<std::int64_t>(file_size) == entry.bytes, path, ": ", file_size,
                 " bytes on disk, the manifest says ", entry.bytes, " (truncated or replaced)");
  ImagenetShardHeader header;
  ImagenetShardContents contents = read_imagenet_shard_file(path, &header);
  MD_INPUT_CHECK(
      header.split == split_ && header.shard_index == shard && header.shard_count == num_shards(),
      path, ": holds ", imagenet_split_name(header.split), " shard ", header.shard_index, " of ",
      header.shard_count, ", the manifest expects ", imagenet_split_name(split_), " shard ", shard,
      " of ", num_shards());
  MD_INPUT_CHECK(contents.count() == entry.count, path, ": holds ", contents.count(),
                 " records, the manifest says ", entry.count);
  MD_INPUT_CHECK(header.checksum == entry.checksum, path, ": checksum ",
                 hash_to_hex(header.checksum), " differs from the manifest's ",
                 hash_to_hex(entry.checksum));
  const std::uint64_t actual = imagenet_content_checksum(contents);
  MD_INPUT_CHECK(actual == header.checksum, path, ": content checksum ", hash_to_hex(actual),
                 " differs from the stored ", hash_to_hex(header.checksum), " (corrupt shard)");
  for (std::size_t i = 0; i < contents.labels.size(); ++i) {
    MD_INPUT_CHECK(contents.labels[i] >= 0 && contents.labels[i] < num_classes(), path, ": record ",
                   i, " (", contents.names[i], ") has label ", contents.labels[i], " outside [0, ",
                   num_classes(), ")");
  }
  return contents;
}

// ---- staging

namespace {

class DirectoryLock {
 public:
  explicit DirectoryLock(const std::string& lock_path) : path_(lock_path) {
    descriptor_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (descriptor_ < 0) {
      throw Error(detail::concat(lock_path, ": cannot open lock file: ", std::strerror(errno)));
    }
    while (::flock(descriptor_, LOCK_EX) != 0) {
      if (errno == EINTR) continue;
      int saved_errno = errno;
      ::close(descriptor_);
      throw Error(detail::concat(lock_path, ": flock failed: ", std::strerror(saved_errno)));
    }
  }
  ~DirectoryLock() { ::close(descriptor_); }
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  std::string path_;
  int descriptor_ = -1;
};

// The whole file, or "" when it cannot be read.
std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool has_size(const fs::path& path, std::int64_t bytes) {
  std::error_code error;
  auto size = fs::file_size(path, error);
  return !error && static_cast<std::int64_t>(size) == bytes;
}

void copy_committed(const fs::path& source, const fs::path& destination) {
  const std::string temporary =
      detail::concat(destination.string(), ".tmp.", static_cast<long long>(::getpid()));
  std::error_code error;
  fs::copy_file(source, temporary, fs::copy_options::overwrite_existing, error);
  if (error) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    MD_INPUT_CHECK(fs::exists(source), source.string(), ": no such file (staging)");
    throw Error(detail::concat("copying ", source.string(), " to ", temporary,
                               " failed: ", error.message()));
  }
  try {
    commit_file(temporary, destination.string());
  } catch (...) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    throw;
  }
}

}  // namespace

std::string stage_imagenet_shards(const std::string& root, const std::string& local_dir) {
  const ImagenetManifest manifest = read_imagenet_manifest(root);
  std::error_code error;
  fs::create_directories(local_dir, error);
  if (error) {
    throw Error(
        detail::concat(local_dir, ": cannot create the staging directory: ", error.message()));
  }
  DirectoryLock lock((fs::path(local_dir) / ".stage.lock").string());
  const fs::path local_manifest = imagenet_manifest_path(local_dir);
  // A local manifest of another pack would claim completeness while we copy: it goes, and ours
  // is copied last. An identical one stays (a rank of this node may be reading it already).
  const bool manifest_current =
      read_text(local_manifest.string()) == read_text(imagenet_manifest_path(root));
  if (!manifest_current) fs::remove(local_manifest, error);
  std::int64_t copied = 0, kept = 0;
  for (const ImagenetSplitManifest& split : manifest.splits) {
    for (const ImagenetShardEntry& shard : split.shards) {
      const fs::path destination = fs::path(local_dir) / shard.file;
      if (has_size(destination, shard.bytes)) {
        ++kept;
        continue;
      }
      const fs::path source = fs::path(root) / shard.file;
      MD_INPUT_CHECK(has_size(source, shard.bytes), source.string(),
                     ": missing, or its size differs from ", imagenet_manifest_path(root));
      copy_committed(source, destination);
      ++copied;
    }
  }
  if (!manifest_current) copy_committed(imagenet_manifest_path(root), local_manifest);
  log_info("staged ImageNet shards from ", root, " to ", local_dir, ": ", copied, " copied, ", kept,
           " already there");
  return local_dir;
}

}  // namespace md::io
