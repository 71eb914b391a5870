// Errors of the whole project. Library code throws these; only main() turns them into exit
// statuses (InputError -> 2, Interrupted -> 3, anything else -> 1). Every message names the
// file, key, record or call that caused it.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace md {

// A failure of the program or a library it calls (CUDA, BLAS, MPI, HDF5...): exit status 1.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bad input from the user: a config key, a data file, an argument, a checkpoint. Exit status 2.
class InputError : public Error {
 public:
  using Error::Error;
};

// Stopped on request (SIGTERM/SIGUSR1) after a checkpoint was written. Exit status 3.
class Interrupted : public Error {
 public:
  using Error::Error;
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}
[[noreturn]] void throw_check_failure(const char* condition, const char* file, int line,
                                      const std::string& message);
}  // namespace detail

}  // namespace md

// MD_CHECK(cond, parts...): an internal invariant or a precondition of an API; throws md::Error
// naming the condition, file and line.
#define MD_CHECK(cond, ...)                                                                   \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      ::md::detail::throw_check_failure(#cond, __FILE__, __LINE__,                            \
                                        ::md::detail::concat("" __VA_OPT__(, ) __VA_ARGS__)); \
    }                                                                                         \
  } while (false)

// MD_INPUT_CHECK(cond, parts...): bad user input; throws md::InputError with the message alone.
#define MD_INPUT_CHECK(cond, ...)                                                  \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      throw ::md::InputError(::md::detail::concat("" __VA_OPT__(, ) __VA_ARGS__)); \
    }                                                                              \
  } while (false)
