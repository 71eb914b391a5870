// Private to io/: RAII over the HDF5 C API, in the manner of HighFive. Handles are move-only and
// their destructors never throw (a failed close is logged); every HDF5 call goes through MD_H5,
// which turns a negative return into md::Error (or md::InputError when the file being read is to
// blame) naming the call, the object path, the file and the source line, with the message taken
// from HDF5's error stack. ApiGuard serializes HDF5 use across threads (the Debian library is
// the serial, non-thread-safe build) and silences HDF5's own printing of error stacks.
// This header includes hdf5.h: it must never be included by a public header.
#pragma once

#include <hdf5.h>

#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "io/h5.h"

namespace md::io::h5 {

// Who is to blame when an HDF5 call fails: the program or its environment (md::Error, exit 1),
// or the file being read (md::InputError, exit 2: corrupt, truncated, foreign, malformed).
enum class Blame { Library, Input };

struct FileContext {
  std::string path;
  Blame blame = Blame::Library;
};

// The message of HDF5's current (default) error stack, innermost causes included. Call it right
// after the failing call: the next HDF5 call clears the stack.
std::string error_stack_message();

[[noreturn]] void throw_call_failure(const char* call, const char* source_file, int line,
                                     const FileContext& file, std::string_view object);

// Throws md::Error or md::InputError (per file.blame) with `message`, naming the file and object.
[[noreturn]] void throw_file_error(const FileContext& file, std::string_view object,
                                   const std::string& message);

template <typename T>
T checked(T result, const char* call, const char* source_file, int line, const FileContext& file,
          std::string_view object) {
  if (result < 0) throw_call_failure(call, source_file, line, file, object);
  return result;
}

}  // namespace md::io::h5

// MD_H5(call, file_context, object_path): runs an HDF5 C call, returns its result, and throws when
// the result is negative (HDF5's failure convention for hid_t, herr_t and htri_t).
#define MD_H5(call, file_context, object) \
  ::md::io::h5::checked((call), #call, __FILE__, __LINE__, (file_context), (object))

namespace md::io::h5 {

enum class HandleKind { File, Group, Dataset, Dataspace, Attribute, PropertyList, Datatype };

// Closes `id` with the close function of its kind (H5Fclose, H5Gclose...); returns HDF5's status.
herr_t close_id(HandleKind kind, hid_t id) noexcept;
const char* close_function_name(HandleKind kind);

template <HandleKind Kind>
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  ~Handle() { reset(); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& other) noexcept : id_(std::exchange(other.id_, H5I_INVALID_HID)) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, H5I_INVALID_HID);
    }
    return *this;
  }

  hid_t id() const { return id_; }
  bool valid() const { return id_ >= 0; }

  // Closes now and throws md::Error (per `file`) when HDF5 fails to close: for a file, closing
  // is the last write-back, so a writer must close explicitly to learn of a failure.
  void close(const FileContext& file, std::string_view object) {
    if (!valid()) return;
    hid_t id = std::exchange(id_, H5I_INVALID_HID);
    checked(close_id(Kind, id), close_function_name(Kind), __FILE__, __LINE__, file, object);
  }

 private:
  void reset() noexcept;
  hid_t id_ = H5I_INVALID_HID;
};

// Logs (never throws) when the close fails.
void log_close_failure(HandleKind kind, hid_t id) noexcept;

template <HandleKind Kind>
void Handle<Kind>::reset() noexcept {
  if (!valid()) return;
  hid_t id = std::exchange(id_, H5I_INVALID_HID);
  if (close_id(Kind, id) < 0) log_close_failure(Kind, id);
}

using File = Handle<HandleKind::File>;
using Group = Handle<HandleKind::Group>;
using Dataset = Handle<HandleKind::Dataset>;
using Dataspace = Handle<HandleKind::Dataspace>;
using Attribute = Handle<HandleKind::Attribute>;
using PropertyList = Handle<HandleKind::PropertyList>;
using Datatype = Handle<HandleKind::Datatype>;

// Holds a process-wide lock on HDF5 and turns off HDF5's automatic error-stack printing for its
// lifetime (restoring the previous printer after). Recursive: guards nest.
class ApiGuard {
 public:
  ApiGuard();
  ~ApiGuard();
  ApiGuard(const ApiGuard&) = delete;
  ApiGuard& operator=(const ApiGuard&) = delete;

 private:
  std::unique_lock<std::recursive_mutex> lock_;
  H5E_auto2_t saved_printer_ = nullptr;
  void* saved_printer_data_ = nullptr;
};

// ---- files: the policy of io/h5.h (bounds [1.8, 1.10], no file locking, semi close degree)

enum class FileMode { ReadOnly, ReadWrite };

File create_file(const FileContext& file);  // truncates an existing file
// Object time tracking: Untracked leaves creation/modification times out of every object header
// (root group included), so a file's bytes depend only on its content (reproducible files).
enum class ObjectTimes { Tracked, Untracked };
File create_file(const FileContext& file, ObjectTimes times);
// Throws md::InputError when the file does not exist; otherwise a failed open is blamed per
// file.blame (an unreadable, truncated or non-HDF5 file).
File open_file(const FileContext& file, FileMode mode);
void flush_file(const File& handle, const FileContext& file);

// ---- objects

enum class LinkOrder { ByName, Tracked };  // Tracked: children iterate in creation order

Group create_group(hid_t parent, const std::string& name, LinkOrder order, const FileContext& file,
                   std::string_view path);
Group open_group(hid_t parent, const std::string& name, const FileContext& file,
                 std::string_view path);
bool link_exists(hid_t parent, const std::string& name, const FileContext& file,
                 std::string_view path);

enum class ChildKind { GroupLink, DatasetLink, OtherLink };
struct Child {
  std::string name;
  ChildKind kind = ChildKind::OtherLink;
};
// The children of a group in creation order when the group tracks it, else in name order.
// Soft and external links are ChildKind::OtherLink.
std::vector<Child> list_children(hid_t group, const FileContext& file, std::string_view path);

// Writes (replacing any attribute of the same name) a scalar attribute.
void write_attribute(hid_t location, const std::string& name, const AttrValue& value,
                     const FileContext& file, std::string_view path);
// Every attribute of an object; an attribute that is not a scalar integer, float or string is
// malformed (thrown per file.blame).
AttributeMap read_attributes(hid_t location, const FileContext& file, std::string_view path);

// The extent of a dataset: {} for a scalar dataspace.
std::vector<hsize_t> dataset_extent(const Dataset& dataset, const FileContext& file,
                                    std::string_view path);

// bfloat16 as an HDF5 float type: 1 sign bit, 8 exponent bits (bias 127), 7 mantissa bits.
Datatype bfloat16_type(const FileContext& file);
bool is_bfloat16(hid_t type);

// "/a" + "b" -> "/a/b"; "/" + "b" -> "/b".
std::string child_path(std::string_view parent, const std::string& name);

// Throws md::Error when `name` cannot be a link name (empty, ".", or containing '/').
void check_link_name(const std::string& name, std::string_view what);

}  // namespace md::io::h5
