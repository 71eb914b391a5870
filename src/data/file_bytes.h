// Whole-file reads for the data set readers, with gzip handled transparently (detected by the
// gzip magic bytes, not the file name). Internal to data/: every failure is an md::InputError
// naming the file, because a data file is user input.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace md::data::detail {

// The file's bytes exactly as stored; InputError when it cannot be opened or read.
std::vector<std::uint8_t> read_file_bytes(const std::string& path);

// True when `bytes` start with the gzip magic 0x1f 0x8b.
bool is_gzip(const std::vector<std::uint8_t>& bytes);

// The decompressed content of a gzip file (all members, CRC checked); InputError naming `path`
// for a corrupt or truncated stream.
std::vector<std::uint8_t> gunzip(const std::vector<std::uint8_t>& compressed,
                                 const std::string& path);

// read_file_bytes, then gunzip when the content is gzip.
std::vector<std::uint8_t> read_maybe_gzip(const std::string& path);

}  // namespace md::data::detail
