// MD_MPI_CHECK: every MPI call of the sweep layer goes through it, so that a failing call
// throws md::Error naming the call, the file, the line and MPI's own message. The session sets
// MPI_ERRORS_RETURN on its communicators, so MPI returns codes instead of aborting. Internal to
// src/sweep (it includes <mpi.h>, which nothing above this layer sees).
#pragma once

#include <mpi.h>

#include <string>

#include "core/error.h"

namespace md::sweep::detail {

[[noreturn]] inline void throw_mpi_error(int code, const char* call, const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING] = {0};
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
  throw Error(std::string(call) + " failed at " + file + ":" + std::to_string(line) + ": " +
              std::string(text, static_cast<std::size_t>(length)));
}

}  // namespace md::sweep::detail

#define MD_MPI_CHECK(call)                                                           \
  do {                                                                               \
    const int md_mpi_code_ = (call);                                                 \
    if (md_mpi_code_ != MPI_SUCCESS) {                                               \
      ::md::sweep::detail::throw_mpi_error(md_mpi_code_, #call, __FILE__, __LINE__); \
    }                                                                                \
  } while (false)
