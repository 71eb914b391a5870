// Helpers for the io tests: a scratch directory removed at the end of a test, raw file
// writes for corrupt inputs, and an expectation that a call throws md::InputError whose message
// names what it must (the file, the object).
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"

namespace md::test {

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "md_io_test_XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw Error("mkdtemp failed for " + pattern);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

// Keeps the first `fraction` of a file's bytes.
inline void truncate_file(const std::string& path, double fraction) {
  auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path,
                               static_cast<std::uintmax_t>(static_cast<double>(size) * fraction));
}

// Expects `call` to throw md::InputError (not a plain md::Error) whose message contains every
// one of `parts`.
inline void expect_input_error(const std::function<void()>& call,
                               const std::vector<std::string>& parts) {
  try {
    call();
    ADD_FAILURE() << "expected md::InputError, nothing was thrown";
  } catch (const InputError& error) {
    std::string message = error.what();
    for (const std::string& part : parts) {
      EXPECT_NE(message.find(part), std::string::npos)
          << "message lacks '" << part << "': " << message;
    }
  } catch (const std::exception& error) {
    ADD_FAILURE() << "expected md::InputError, got another exception: " << error.what();
  }
}

}  // namespace md::test
