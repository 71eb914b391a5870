// Public vocabulary shared by the HDF5 files of io/ (trial logs, checkpoints): attribute values
// and typed access to them. No HDF5 type appears here or in any other public header of io/:
// the HDF5 C API is wrapped in the private header io/h5_handle.h, so that layers above io need
// neither HDF5 include paths nor HDF5 knowledge.
//
// How our files are opened (the policy lives in h5.cpp, shared by every file we write or read):
// - library version bounds [1.8, 1.10]: superblock version 2, readable by HDF5 1.8 and h5py.
//   Not "latest" (superblock 3): a 1.10 superblock 3 file that was open for writing when its
//   writer died is marked "open for write" and refuses every later open until `h5clear -s`.
// - HDF5 file locking is off (H5Pset_file_locking), in the writer and in our readers: a trial
//   has exactly one writer (the sweep guarantees it), and with the writer's lock gone a reader
//   (read_trial_log, the report, `h5dump`, h5py) can open a running trial's log, which sees
//   every row up to the writer's last flush. Parallel file systems often lack flock anyway.
// - No SWMR: SWMR needs every dataset to exist before writing starts, but trial-log metrics
//   appear lazily; instead the writer touches the file only inside flush() (see trial_log.h), so
//   between flushes the file on disk is complete and consistent.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>

namespace md::io {

// A scalar attribute: integers are stored as int64, reals as float64, strings as variable-length
// UTF-8 (as h5py writes them). Reading accepts any integer, float or string scalar attribute.
using AttrValue = std::variant<std::int64_t, double, std::string>;
using AttributeMap = std::map<std::string, AttrValue>;

// "42", "0.5" (shortest round-trip form), or the string itself.
std::string attr_to_string(const AttrValue& value);

// Typed lookups; `source` names the file (or object) for the message. They throw md::InputError
// naming the source and the attribute when it is missing or of the wrong kind.
std::int64_t attribute_int(const AttributeMap& attributes, const std::string& name,
                           const std::string& source);
// Accepts an integer attribute too (converted).
double attribute_double(const AttributeMap& attributes, const std::string& name,
                        const std::string& source);
const std::string& attribute_string(const AttributeMap& attributes, const std::string& name,
                                    const std::string& source);

}  // namespace md::io
