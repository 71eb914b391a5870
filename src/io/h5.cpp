// The HDF5 plumbing of io/: handle closing, error-stack messages, the file-open policy described
// in io/h5.h, attributes and link listing. Everything here runs under an ApiGuard taken by the
// public entry points (trial_log.cpp, checkpoint.cpp); nothing here knows about trial logs or
// checkpoints.
#include "io/h5.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <sstream>

#include "core/error.h"
#include "core/logging.h"
#include "io/h5_handle.h"

namespace md::io {

std::string attr_to_string(const AttrValue& value) {
  if (const auto* integer = std::get_if<std::int64_t>(&value)) return std::to_string(*integer);
  if (const auto* real = std::get_if<double>(&value)) {
    std::ostringstream out;
    out.precision(std::numeric_limits<double>::max_digits10);
    out << *real;
    return out.str();
  }
  return std::get<std::string>(value);
}

namespace {
const AttrValue& find_attribute(const AttributeMap& attributes, const std::string& name,
                                const std::string& source) {
  auto found = attributes.find(name);
  MD_INPUT_CHECK(found != attributes.end(), source, ": attribute '", name, "' is missing");
  return found->second;
}
}  // namespace

std::int64_t attribute_int(const AttributeMap& attributes, const std::string& name,
                           const std::string& source) {
  const AttrValue& value = find_attribute(attributes, name, source);
  const auto* integer = std::get_if<std::int64_t>(&value);
  MD_INPUT_CHECK(integer != nullptr, source, ": attribute '", name, "' must be an integer, got '",
                 attr_to_string(value), "'");
  return *integer;
}

double attribute_double(const AttributeMap& attributes, const std::string& name,
                        const std::string& source) {
  const AttrValue& value = find_attribute(attributes, name, source);
  if (const auto* integer = std::get_if<std::int64_t>(&value)) {
    return static_cast<double>(*integer);
  }
  const auto* real = std::get_if<double>(&value);
  MD_INPUT_CHECK(real != nullptr, source, ": attribute '", name, "' must be a number, got '",
                 attr_to_string(value), "'");
  return *real;
}

const std::string& attribute_string(const AttributeMap& attributes, const std::string& name,
                                    const std::string& source) {
  const AttrValue& value = find_attribute(attributes, name, source);
  const auto* text = std::get_if<std::string>(&value);
  MD_INPUT_CHECK(text != nullptr, source, ": attribute '", name, "' must be a string, got ",
                 attr_to_string(value));
  return *text;
}

}  // namespace md::io

namespace md::io::h5 {

// ---- errors

namespace {

struct StackEntries {
  std::vector<std::string> lines;
};

herr_t collect_stack_entry(unsigned, const H5E_error2_t* entry, void* client_data) {
  auto* entries = static_cast<StackEntries*>(client_data);
  std::string line = entry->func_name != nullptr ? entry->func_name : "?";
  line += "(): ";
  line += entry->desc != nullptr ? entry->desc : "";
  char minor[256] = {};
  H5E_type_t type{};
  if (H5Eget_msg(entry->min_num, &type, minor, sizeof minor) > 0) {
    line += " (";
    line += minor;
    line += ")";
  }
  std::replace(line.begin(), line.end(), '\n', ' ');  // HDF5 embeds ctime() text
  entries->lines.push_back(std::move(line));
  return 0;
}

std::string call_name(const char* call) {
  std::string text = call;
  std::size_t paren = text.find('(');
  return paren == std::string::npos ? text : text.substr(0, paren);
}

}  // namespace

std::string error_stack_message() {
  // Copy (and clear) the default stack first: walking the live stack with API calls is fragile.
  hid_t stack = H5Eget_current_stack();
  if (stack < 0) return "no HDF5 error stack";
  StackEntries entries;
  H5Ewalk2(stack, H5E_WALK_DOWNWARD, collect_stack_entry, &entries);
  H5Eclose_stack(stack);
  if (entries.lines.empty()) return "no details on the HDF5 error stack";
  constexpr std::size_t kMaxLines = 6;  // the API call and its innermost causes
  std::vector<std::string> kept;
  for (std::size_t i = 0; i < entries.lines.size(); ++i) {
    bool inner = i + (kMaxLines - 1) >= entries.lines.size();
    if (i == 0 || inner) kept.push_back(entries.lines[i]);
  }
  std::string message;
  for (std::size_t i = 0; i < kept.size(); ++i) message += (i ? " <- " : "") + kept[i];
  return message;
}

[[noreturn]] void throw_file_error(const FileContext& file, std::string_view object,
                                   const std::string& message) {
  std::string text = detail::concat(file.path, ": ");
  if (!object.empty()) text += detail::concat("'", object, "': ");
  text += message;
  if (file.blame == Blame::Input) throw InputError(text);
  throw Error(text);
}

[[noreturn]] void throw_call_failure(const char* call, const char* source_file, int line,
                                     const FileContext& file, std::string_view object) {
  std::string stack = error_stack_message();
  std::string source = std::filesystem::path(source_file).filename().string();
  throw_file_error(
      file, object,
      detail::concat("HDF5 ", call_name(call), " failed: ", stack, " [", source, ":", line, "]"));
}

// ---- handles

herr_t close_id(HandleKind kind, hid_t id) noexcept {
  switch (kind) {
    case HandleKind::File:
      return H5Fclose(id);
    case HandleKind::Group:
      return H5Gclose(id);
    case HandleKind::Dataset:
      return H5Dclose(id);
    case HandleKind::Dataspace:
      return H5Sclose(id);
    case HandleKind::Attribute:
      return H5Aclose(id);
    case HandleKind::PropertyList:
      return H5Pclose(id);
    case HandleKind::Datatype:
      return H5Tclose(id);
  }
  return -1;
}

const char* close_function_name(HandleKind kind) {
  switch (kind) {
    case HandleKind::File:
      return "H5Fclose";
    case HandleKind::Group:
      return "H5Gclose";
    case HandleKind::Dataset:
      return "H5Dclose";
    case HandleKind::Dataspace:
      return "H5Sclose";
    case HandleKind::Attribute:
      return "H5Aclose";
    case HandleKind::PropertyList:
      return "H5Pclose";
    case HandleKind::Datatype:
      return "H5Tclose";
  }
  return "H5?close";
}

void log_close_failure(HandleKind kind, hid_t id) noexcept {
  try {
    log_error("HDF5 ", close_function_name(kind), " failed for id ", id, ": ",
              error_stack_message());
  } catch (...) {
    // Logging itself failed (out of memory): nothing sensible is left to do in a destructor.
  }
}

// ---- guard

namespace {
std::recursive_mutex& hdf5_mutex() {
  static std::recursive_mutex mutex;
  return mutex;
}
}  // namespace

ApiGuard::ApiGuard() : lock_(hdf5_mutex()) {
  H5Eget_auto2(H5E_DEFAULT, &saved_printer_, &saved_printer_data_);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

ApiGuard::~ApiGuard() {
  H5Eset_auto2(H5E_DEFAULT, saved_printer_, saved_printer_data_);
}

// ---- files

namespace {
PropertyList file_access(const FileContext& file) {
  PropertyList access(MD_H5(H5Pcreate(H5P_FILE_ACCESS), file, ""));
  MD_H5(H5Pset_libver_bounds(access.id(), H5F_LIBVER_V18, H5F_LIBVER_V110), file, "");
  MD_H5(H5Pset_file_locking(access.id(), false, true), file, "");
  MD_H5(H5Pset_fclose_degree(access.id(), H5F_CLOSE_SEMI), file, "");
  return access;
}
}  // namespace

File create_file(const FileContext& file) {
  return create_file(file, ObjectTimes::Tracked);
}

File create_file(const FileContext& file, ObjectTimes times) {
  PropertyList access = file_access(file);
  PropertyList creation(MD_H5(H5Pcreate(H5P_FILE_CREATE), file, ""));
  MD_H5(H5Pset_obj_track_times(creation.id(), times == ObjectTimes::Tracked), file, "");
  return File(
      MD_H5(H5Fcreate(file.path.c_str(), H5F_ACC_TRUNC, creation.id(), access.id()), file, ""));
}

File open_file(const FileContext& file, FileMode mode) {
  std::error_code error;
  auto status = std::filesystem::status(file.path, error);
  if (!std::filesystem::exists(status)) throw InputError(file.path + ": no such file");
  if (!std::filesystem::is_regular_file(status)) {
    throw InputError(file.path + ": not a regular file");
  }
  PropertyList access = file_access(file);
  unsigned flags = mode == FileMode::ReadWrite ? H5F_ACC_RDWR : H5F_ACC_RDONLY;
  return File(MD_H5(H5Fopen(file.path.c_str(), flags, access.id()), file, ""));
}

void flush_file(const File& handle, const FileContext& file) {
  MD_H5(H5Fflush(handle.id(), H5F_SCOPE_GLOBAL), file, "");
}

// ---- objects

std::string child_path(std::string_view parent, const std::string& name) {
  std::string path(parent);
  if (path.empty() || path.back() != '/') path += '/';
  return path + name;
}

void check_link_name(const std::string& name, std::string_view what) {
  MD_CHECK(!name.empty() && name != "." && name.find('/') == std::string::npos, "invalid ", what,
           " name '", name, "': HDF5 link names must be non-empty, not '.', without '/'");
}

Group create_group(hid_t parent, const std::string& name, LinkOrder order, const FileContext& file,
                   std::string_view path) {
  PropertyList creation(MD_H5(H5Pcreate(H5P_GROUP_CREATE), file, path));
  if (order == LinkOrder::Tracked) {
    MD_H5(H5Pset_link_creation_order(creation.id(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED),
          file, path);
  }
  return Group(
      MD_H5(H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, creation.id(), H5P_DEFAULT), file, path));
}

Group open_group(hid_t parent, const std::string& name, const FileContext& file,
                 std::string_view path) {
  return Group(MD_H5(H5Gopen2(parent, name.c_str(), H5P_DEFAULT), file, path));
}

bool link_exists(hid_t parent, const std::string& name, const FileContext& file,
                 std::string_view path) {
  return MD_H5(H5Lexists(parent, name.c_str(), H5P_DEFAULT), file, path) > 0;
}

namespace {
struct LinkList {
  std::vector<std::pair<std::string, bool>> names_and_hardness;
};

herr_t collect_link(hid_t, const char* name, const H5L_info_t* info, void* client_data) {
  auto* links = static_cast<LinkList*>(client_data);
  links->names_and_hardness.emplace_back(name, info->type == H5L_TYPE_HARD);
  return 0;
}
}  // namespace

std::vector<Child> list_children(hid_t group, const FileContext& file, std::string_view path) {
  // `group` may be a file id (the root): open "." to get a group for its creation properties.
  Group self(MD_H5(H5Gopen2(group, ".", H5P_DEFAULT), file, path));
  PropertyList creation(MD_H5(H5Gget_create_plist(self.id()), file, path));
  unsigned order_flags = 0;
  MD_H5(H5Pget_link_creation_order(creation.id(), &order_flags), file, path);
  H5_index_t index =
      (order_flags & H5P_CRT_ORDER_INDEXED) != 0 ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;
  LinkList links;
  MD_H5(H5Literate(group, index, H5_ITER_INC, nullptr, collect_link, &links), file, path);
  std::vector<Child> children;
  for (const auto& [name, hard] : links.names_and_hardness) {
    Child child{name, ChildKind::OtherLink};
    if (hard) {
      H5O_info_t info{};
      MD_H5(H5Oget_info_by_name2(group, name.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT), file,
            child_path(path, name));
      if (info.type == H5O_TYPE_GROUP) child.kind = ChildKind::GroupLink;
      if (info.type == H5O_TYPE_DATASET) child.kind = ChildKind::DatasetLink;
    }
    children.push_back(std::move(child));
  }
  return children;
}

// ---- attributes

void write_attribute(hid_t location, const std::string& name, const AttrValue& value,
                     const FileContext& file, std::string_view path) {
  check_link_name(name, "attribute");
  std::string where = detail::concat(path, " attribute ", name);
  if (MD_H5(H5Aexists(location, name.c_str()), file, where) > 0) {
    MD_H5(H5Adelete(location, name.c_str()), file, where);
  }
  Dataspace scalar(MD_H5(H5Screate(H5S_SCALAR), file, where));
  if (const auto* integer = std::get_if<std::int64_t>(&value)) {
    Attribute attribute(MD_H5(
        H5Acreate2(location, name.c_str(), H5T_STD_I64LE, scalar.id(), H5P_DEFAULT, H5P_DEFAULT),
        file, where));
    MD_H5(H5Awrite(attribute.id(), H5T_NATIVE_INT64, integer), file, where);
  } else if (const auto* real = std::get_if<double>(&value)) {
    Attribute attribute(MD_H5(
        H5Acreate2(location, name.c_str(), H5T_IEEE_F64LE, scalar.id(), H5P_DEFAULT, H5P_DEFAULT),
        file, where));
    MD_H5(H5Awrite(attribute.id(), H5T_NATIVE_DOUBLE, real), file, where);
  } else {
    // Variable-length UTF-8, as h5py writes a Python str.
    Datatype text_type(MD_H5(H5Tcopy(H5T_C_S1), file, where));
    MD_H5(H5Tset_size(text_type.id(), H5T_VARIABLE), file, where);
    MD_H5(H5Tset_cset(text_type.id(), H5T_CSET_UTF8), file, where);
    Attribute attribute(MD_H5(
        H5Acreate2(location, name.c_str(), text_type.id(), scalar.id(), H5P_DEFAULT, H5P_DEFAULT),
        file, where));
    const char* characters = std::get<std::string>(value).c_str();
    MD_H5(H5Awrite(attribute.id(), text_type.id(), &characters), file, where);
  }
}

namespace {
herr_t collect_attribute_name(hid_t, const char* name, const H5A_info_t*, void* client_data) {
  static_cast<std::vector<std::string>*>(client_data)->emplace_back(name);
  return 0;
}

std::string read_string_attribute(const Attribute& attribute, hid_t file_type,
                                  const FileContext& file, std::string_view where) {
  Datatype memory_type(MD_H5(H5Tcopy(H5T_C_S1), file, where));
  H5T_cset_t cset = H5Tget_cset(file_type);
  MD_H5(H5Tset_cset(memory_type.id(), cset == H5T_CSET_ERROR ? H5T_CSET_ASCII : cset), file, where);
  if (MD_H5(H5Tis_variable_str(file_type), file, where) > 0) {
    MD_H5(H5Tset_size(memory_type.id(), H5T_VARIABLE), file, where);
    char* characters = nullptr;
    MD_H5(H5Aread(attribute.id(), memory_type.id(), &characters), file, where);
    std::string text = characters != nullptr ? characters : "";
    H5free_memory(characters);
    return text;
  }
  std::size_t size = H5Tget_size(file_type);
  if (size == 0) throw_file_error(file, where, "string attribute of size 0");
  MD_H5(H5Tset_size(memory_type.id(), size), file, where);
  MD_H5(H5Tset_strpad(memory_type.id(), H5T_STR_NULLPAD), file, where);
  std::string text(size, '\0');
  MD_H5(H5Aread(attribute.id(), memory_type.id(), text.data()), file, where);
  text.resize(std::strlen(text.c_str()));
  if (H5Tget_strpad(file_type) == H5T_STR_SPACEPAD) {
    text.erase(text.find_last_not_of(' ') + 1);
  }
  return text;
}
}  // namespace

AttributeMap read_attributes(hid_t location, const FileContext& file, std::string_view path) {
  std::vector<std::string> names;
  MD_H5(H5Aiterate2(location, H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_attribute_name, &names),
        file, path);
  AttributeMap attributes;
  for (const std::string& name : names) {
    std::string where = detail::concat(path, " attribute ", name);
    Attribute attribute(MD_H5(H5Aopen(location, name.c_str(), H5P_DEFAULT), file, where));
    Dataspace space(MD_H5(H5Aget_space(attribute.id()), file, where));
    H5S_class_t space_class = H5Sget_simple_extent_type(space.id());
    hssize_t points = MD_H5(H5Sget_simple_extent_npoints(space.id()), file, where);
    if (space_class == H5S_NULL || points != 1) {
      throw_file_error(file, where, "attribute is not a scalar");
    }
    Datatype type(MD_H5(H5Aget_type(attribute.id()), file, where));
    switch (H5Tget_class(type.id())) {
      case H5T_INTEGER: {
        if (H5Tget_sign(type.id()) == H5T_SGN_NONE && H5Tget_size(type.id()) >= 8) {
          std::uint64_t unsigned_value = 0;
          MD_H5(H5Aread(attribute.id(), H5T_NATIVE_UINT64, &unsigned_value), file, where);
          if (unsigned_value >
              static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
            throw_file_error(file, where, "unsigned attribute does not fit in int64");
          }
          attributes[name] = static_cast<std::int64_t>(unsigned_value);
        } else {
          std::int64_t value = 0;
          MD_H5(H5Aread(attribute.id(), H5T_NATIVE_INT64, &value), file, where);
          attributes[name] = value;
        }
        break;
      }
      case H5T_FLOAT: {
        double value = 0.0;
        MD_H5(H5Aread(attribute.id(), H5T_NATIVE_DOUBLE, &value), file, where);
        attributes[name] = value;
        break;
      }
      case H5T_STRING:
        attributes[name] = read_string_attribute(attribute, type.id(), file, where);
        break;
      default:
        throw_file_error(file, where, "attribute is not an integer, float or string");
    }
  }
  return attributes;
}

// ---- datasets and types

std::vector<hsize_t> dataset_extent(const Dataset& dataset, const FileContext& file,
                                    std::string_view path) {
  Dataspace space(MD_H5(H5Dget_space(dataset.id()), file, path));
  H5S_class_t space_class = H5Sget_simple_extent_type(space.id());
  if (space_class == H5S_SCALAR) return {};
  if (space_class != H5S_SIMPLE) throw_file_error(file, path, "dataset has no data (null space)");
  int rank = MD_H5(H5Sget_simple_extent_ndims(space.id()), file, path);
  std::vector<hsize_t> extent(static_cast<std::size_t>(rank));
  MD_H5(H5Sget_simple_extent_dims(space.id(), extent.data(), nullptr), file, path);
  return extent;
}

Datatype bfloat16_type(const FileContext& file) {
  Datatype type(MD_H5(H5Tcopy(H5T_IEEE_F32LE), file, "bfloat16 type"));
  MD_H5(H5Tset_fields(type.id(), 15, 7, 8, 0, 7), file, "bfloat16 type");
  MD_H5(H5Tset_precision(type.id(), 16), file, "bfloat16 type");
  MD_H5(H5Tset_size(type.id(), 2), file, "bfloat16 type");
  MD_H5(H5Tset_ebias(type.id(), 127), file, "bfloat16 type");
  return type;
}

bool is_bfloat16(hid_t type) {
  if (H5Tget_class(type) != H5T_FLOAT || H5Tget_size(type) != 2) return false;
  std::size_t sign_position = 0, exponent_position = 0, exponent_size = 0, mantissa_position = 0,
              mantissa_size = 0;
  if (H5Tget_fields(type, &sign_position, &exponent_position, &exponent_size, &mantissa_position,
                    &mantissa_size) < 0) {
    return false;
  }
  return sign_position == 15 && exponent_position == 7 && exponent_size == 8 &&
         mantissa_position == 0 && mantissa_size == 7;
}

}  // namespace md::io::h5
