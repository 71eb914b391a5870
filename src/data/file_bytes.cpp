// Whole-file reads and gzip inflation for the data readers (see file_bytes.h). zlib is used
// here only; nothing of it leaks into headers.
#include "data/file_bytes.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace md::data::detail {

std::vector<std::uint8_t> read_file_bytes(const std::string& path) {
  std::error_code status_error;
  const auto status = std::filesystem::status(path, status_error);
  MD_INPUT_CHECK(std::filesystem::exists(status), "data file ", path, " does not exist");
  MD_INPUT_CHECK(!std::filesystem::is_directory(status), "data file ", path,
                 " is a directory, not a file");
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  if (!file) {
    throw InputError(
        md::detail::concat("cannot open data file ", path, ": ", std::strerror(errno)));
  }
  const std::streamoff size = file.tellg();
  MD_INPUT_CHECK(size >= 0, "cannot determine the size of data file ", path);
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  file.seekg(0);
  file.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  MD_INPUT_CHECK(file.gcount() == static_cast<std::streamsize>(size), "short read of data file ",
                 path, ": got ", file.gcount(), " of ", size, " bytes");
  return bytes;
}

bool is_gzip(const std::vector<std::uint8_t>& bytes) {
  return bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
}

namespace {

// Owns a z_stream set up for gzip decoding; inflateEnd in the destructor.
class GzipInflater {
 public:
  explicit GzipInflater(const std::string& path) {
    std::memset(&stream_, 0, sizeof(stream_));
    // 16 + MAX_WBITS: gzip wrapper only, with its CRC-32 and length trailer checked.
    if (inflateInit2(&stream_, 16 + MAX_WBITS) != Z_OK) {
      throw Error(md::detail::concat("zlib inflateInit2 failed for ", path));
    }
  }
  ~GzipInflater() { inflateEnd(&stream_); }
  GzipInflater(const GzipInflater&) = delete;
  GzipInflater& operator=(const GzipInflater&) = delete;
  z_stream& stream() { return stream_; }

 private:
  z_stream stream_;
};

}  // namespace

std::vector<std::uint8_t> gunzip(const std::vector<std::uint8_t>& compressed,
                                 const std::string& path) {
  GzipInflater inflater(path);
  z_stream& stream = inflater.stream();
  std::vector<std::uint8_t> output(compressed.size() * 4 + 1024);
  std::size_t consumed = 0;
  std::size_t produced = 0;
  constexpr std::size_t kMaxChunk = 1u << 30;  // z_stream counts in 32-bit uInt
  while (true) {
    if (produced == output.size()) output.resize(output.size() * 2);
    const std::size_t in_chunk = std::min(compressed.size() - consumed, kMaxChunk);
    const std::size_t out_chunk = std::min(output.size() - produced, kMaxChunk);
    stream.next_in = const_cast<Bytef*>(compressed.data() + consumed);
    stream.avail_in = static_cast<uInt>(in_chunk);
    stream.next_out = output.data() + produced;
    stream.avail_out = static_cast<uInt>(out_chunk);
    const int status = inflate(&stream, Z_NO_FLUSH);
    consumed += in_chunk - stream.avail_in;
    produced += out_chunk - stream.avail_out;
    if (status == Z_STREAM_END) {
      // Concatenated gzip members form one file (as gunzip treats them).
      if (consumed + 2 <= compressed.size() && compressed[consumed] == 0x1f &&
          compressed[consumed + 1] == 0x8b) {
        inflateReset(&stream);
        continue;
      }
      break;
    }
    if (status == Z_DATA_ERROR || status == Z_NEED_DICT) {
      throw InputError(md::detail::concat("corrupt gzip data in ", path, " at compressed byte ",
                                          consumed, ": ",
                                          stream.msg ? stream.msg : "invalid data"));
    }
    if (status == Z_MEM_ERROR)
      throw Error(md::detail::concat("zlib out of memory inflating ", path));
    if (status == Z_BUF_ERROR && consumed == compressed.size()) {
      throw InputError(md::detail::concat("truncated gzip file ", path, ": the stream ends after ",
                                          compressed.size(), " compressed bytes"));
    }
    if (status != Z_OK && status != Z_BUF_ERROR) {
      throw InputError(md::detail::concat("gzip error ", status, " in ", path));
    }
    if (consumed == compressed.size() && stream.avail_out != 0) {
      throw InputError(md::detail::concat("truncated gzip file ", path, ": the stream ends after ",
                                          compressed.size(), " compressed bytes"));
    }
  }
  output.resize(produced);
  return output;
}

std::vector<std::uint8_t> read_maybe_gzip(const std::string& path) {
  std::vector<std::uint8_t> bytes = read_file_bytes(path);
  if (is_gzip(bytes)) return gunzip(bytes, path);
  return bytes;
}

}  // namespace md::data::detail
