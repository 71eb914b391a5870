// Trial config: yaml-cpp parses the text once into our own small tree (Node), which keeps every
// node's line and column or the override that set it, copies deeply without losing them (unlike
// YAML::Clone), and is what overrides edit and the validator reads. The validator and the
// canonical writer walk the key table (config_keys.h) row by row: every user mistake becomes an
// InputError naming source, key path and location; the few cross-key rules are small functions
// here. Output YAML (to_yaml, ConfigTree::to_text) is written here, not by yaml-cpp's emitter, so
// the canonical text and with it every trial id depend only on this file and the table. Nothing
// here knows what an architecture or a data set is beyond its spelling.
#include "io/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <utility>

#include "core/error.h"
#include "core/hash.h"
#include "io/config_keys.h"

namespace md::io {

namespace {

using Kind = ConfigTree::Kind;

// One YAML node. Mappings keep their keys in document order in `keys`, with the values at the
// same index in `children`; sequences keep their items in `children`.
struct Node {
  Kind kind = Kind::Null;
  std::string text;     // scalar text, quotes removed
  bool quoted = false;  // quoted or !!str-tagged: a string, never a number or bool
  std::vector<std::string> keys;
  std::vector<Node> children;
  int line = -1;  // 1-based position in the source; -1 when set by an override
  int column = -1;
  std::string origin;  // the override that set this node; empty for nodes of the source

  const Node* find(std::string_view key) const {
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] == key) return &children[i];
    }
    return nullptr;
  }
  Node* find(std::string_view key) {
    return const_cast<Node*>(static_cast<const Node&>(*this).find(key));
  }
};

std::string join_path(const std::string& parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  return detail::concat(parent, ".", key);
}

std::string location_of(const Node* node) {
  if (node == nullptr) return {};
  if (!node->origin.empty()) return detail::concat(" (from ", node->origin, ")");
  if (node->line >= 0) return detail::concat(" (line ", node->line, ", column ", node->column, ")");
  return {};
}

// "<source>: <path>: <message><location>"
[[noreturn]] void fail_at(const std::string& source, const std::string& path, const Node* node,
                          const std::string& message) {
  std::string text = source + ": ";
  if (!path.empty()) text += path + ": ";
  throw InputError(text + message + location_of(node));
}

std::string describe(const Node& node) {
  switch (node.kind) {
    case Kind::Null:
      return "null";
    case Kind::Scalar:
      return node.quoted ? detail::concat("the quoted string '", node.text, "'")
                         : detail::concat("'", node.text, "'");
    case Kind::Sequence:
      return "a sequence";
    case Kind::Mapping:
      return "a mapping";
  }
  return "?";
}

std::string_view kind_name(Kind kind) {
  switch (kind) {
    case Kind::Null:
      return "null";
    case Kind::Scalar:
      return "a scalar";
    case Kind::Sequence:
      return "a sequence";
    case Kind::Mapping:
      return "a mapping";
  }
  return "?";
}

void set_origin(Node& node, const std::string& origin) {
  node.origin = origin;
  node.line = -1;
  node.column = -1;
  for (Node& child : node.children) set_origin(child, origin);
}

// ---- reading YAML text into Node

Node convert(const YAML::Node& yaml, const std::string& source, const std::string& path) {
  Node node;
  const YAML::Mark mark = yaml.Mark();
  if (!mark.is_null()) {
    node.line = mark.line + 1;
    node.column = mark.column + 1;
  }
  switch (yaml.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      node.kind = Kind::Null;
      break;
    case YAML::NodeType::Scalar:
      node.kind = Kind::Scalar;
      node.text = yaml.Scalar();
      node.quoted = yaml.Tag() == "!" || yaml.Tag() == "tag:yaml.org,2002:str";
      break;
    case YAML::NodeType::Sequence: {
      node.kind = Kind::Sequence;
      std::size_t index = 0;
      for (const YAML::Node& item : yaml) {
        node.children.push_back(convert(item, source, detail::concat(path, "[", index, "]")));
        ++index;
      }
      break;
    }
    case YAML::NodeType::Map:
      node.kind = Kind::Mapping;
      for (auto it = yaml.begin(); it != yaml.end(); ++it) {
        Node key = convert(it->first, source, path);
        if (key.kind != Kind::Scalar) {
          fail_at(source, path, &key,
                  detail::concat("a key must be a scalar, got ", describe(key)));
        }
        const std::string key_path = join_path(path, key.text);
        Node value = convert(it->second, source, key_path);
        if (node.find(key.text) != nullptr) fail_at(source, key_path, &key, "duplicate key");
        node.keys.push_back(key.text);
        node.children.push_back(std::move(value));
      }
      break;
  }
  return node;
}

Node parse_yaml(const std::string& text, const std::string& source, const std::string& what) {
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(text);
  } catch (const YAML::Exception& error) {
    std::string message = detail::concat(what, ": ", error.msg);
    if (!error.mark.is_null()) {
      message = detail::concat(what, " at line ", error.mark.line + 1, ", column ",
                               error.mark.column + 1, ": ", error.msg);
    }
    throw InputError(detail::concat(source, ": ", message));
  }
  if (documents.size() > 1) {
    throw InputError(
        detail::concat(source, ": ", what, ": expected one YAML document, got ", documents.size()));
  }
  if (documents.empty()) return Node{};
  return convert(documents.front(), source, "");
}

// ---- writing Node as YAML

bool is_plain_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '.' || c == '/' ||
         c == '-' || c == '+' || c == ':' || c == '~';
}

// A plain scalar that YAML reads back as the same text in block and flow context alike.
bool is_plain_safe(std::string_view text) {
  if (text.empty()) return false;
  if (!std::all_of(text.begin(), text.end(), is_plain_char)) return false;
  if (text.front() == ':' || text.back() == ':' || text.front() == '~') return false;
  if (text.front() == '-' && text.size() == 1) return false;
  // "---" and "..." open and close documents.
  if (text.substr(0, 3) == "---" || text.substr(0, 3) == "...") return false;
  return true;
}

bool equals_lowercase(std::string_view text, std::string_view lower) {
  return text.size() == lower.size() &&
         std::equal(text.begin(), text.end(), lower.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == b;
         });
}

// Whether a string must be quoted so that YAML readers (yaml-cpp, and PyYAML's YAML 1.1 rules)
// read it as a string rather than a null, bool or number.
bool needs_quotes_as_string(std::string_view text) {
  if (!is_plain_safe(text)) return true;
  for (std::string_view word : {"null", "true", "false", "yes", "no", "on", "off", "y", "n"}) {
    if (equals_lowercase(text, word)) return true;
  }
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  if (is_digit(text.front())) return true;
  if (text.size() > 1 && (text.front() == '+' || text.front() == '-' || text.front() == '.')) {
    const char second = static_cast<char>(std::tolower(static_cast<unsigned char>(text[1])));
    if (is_digit(second) || second == '.' || second == 'i' || second == 'n') return true;
  }
  return false;
}

std::string double_quoted(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          static constexpr char kHex[] = "0123456789abcdef";
          const auto byte = static_cast<unsigned char>(c);
          out += "\\x";
          out += kHex[byte >> 4];
          out += kHex[byte & 0xf];
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string scalar_text(const Node& node) {
  if (node.kind == Kind::Null) return "null";
  if (node.quoted || !is_plain_safe(node.text)) return double_quoted(node.text);
  return node.text;
}

std::string key_text(const std::string& key) {
  return needs_quotes_as_string(key) ? double_quoted(key) : key;
}

// Scalars, nulls, empty collections and sequences of scalars go on one line.
bool is_inline(const Node& node) {
  if (node.kind == Kind::Null || node.kind == Kind::Scalar) return true;
  if (node.children.empty()) return true;
  if (node.kind == Kind::Mapping) return false;
  return std::all_of(node.children.begin(), node.children.end(), [](const Node& child) {
    return child.kind == Kind::Null || child.kind == Kind::Scalar;
  });
}

std::string inline_text(const Node& node) {
  if (node.kind == Kind::Mapping) return "{}";
  if (node.kind == Kind::Sequence) {
    std::string out = "[";
    for (std::size_t i = 0; i < node.children.size(); ++i) {
      if (i > 0) out += ", ";
      out += scalar_text(node.children[i]);
    }
    return out + "]";
  }
  return scalar_text(node);
}

// The lines of a non-inline mapping or sequence, indented by `indent` spaces.
void emit_block(const Node& node, std::size_t indent, std::string& out) {
  const std::string pad(indent, ' ');
  if (node.kind == Kind::Mapping) {
    for (std::size_t i = 0; i < node.keys.size(); ++i) {
      const Node& child = node.children[i];
      // Appended piecewise: GCC 12 warns falsely (-Wrestrict) on " " + std::string + "\n".
      out += pad;
      out += key_text(node.keys[i]);
      out += ':';
      if (is_inline(child)) {
        out += ' ';
        out += inline_text(child);
        out += '\n';
      } else {
        out += "\n";
        emit_block(child, indent + 2, out);
      }
    }
    return;
  }
  for (const Node& child : node.children) {
    if (is_inline(child)) {
      out += pad;
      out += "- ";
      out += inline_text(child);
      out += '\n';
    } else {
      std::string nested;
      emit_block(child, indent + 2, nested);
      nested.replace(indent, 2, "- ");
      out += nested;
    }
  }
}

std::string emit_document(const Node& node) {
  if (is_inline(node)) return inline_text(node) + "\n";
  std::string out;
  emit_block(node, 0, out);
  return out;
}

// ---- scalar parsing

// Drops one leading '+' (YAML allows it, from_chars does not); false when what is left cannot
// start a number.
bool strip_plus(std::string_view& text) {
  const bool had_plus = !text.empty() && text.front() == '+';
  if (had_plus) text.remove_prefix(1);
  return !text.empty() && text.front() != '+' && !(had_plus && text.front() == '-');
}

bool parse_double(std::string_view text, double& out) {
  if (!strip_plus(text)) return false;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return error == std::errc() && end == text.data() + text.size() && std::isfinite(out);
}

template <typename Integer>
bool parse_integer(std::string_view text, Integer& out) {
  if (!strip_plus(text)) return false;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return error == std::errc() && end == text.data() + text.size();
}

// ---- the validator

// The problems of one validation that have been found so far: a config with several mistakes
// reports all of them at once (each "<source>: <path>: <message><location>" on its own line),
// in key-table order, then fails.
class ProblemList {
 public:
  void add(const InputError& error) { messages_.emplace_back(error.what()); }
  // Runs `check`; an InputError it throws is recorded, and false returned.
  template <typename Check>
  bool record(Check&& check) {
    try {
      check();
      return true;
    } catch (const InputError& error) {
      add(error);
      return false;
    }
  }
  void throw_if_any() const {
    if (messages_.empty()) return;
    std::string text;
    for (const std::string& message : messages_) {
      if (!text.empty()) text += "\n";
      text += message;
    }
    throw InputError(text);
  }

 private:
  std::vector<std::string> messages_;
};

// What every message of one validation starts with (the source name), and where the problems
// found so far go.
struct Context {
  const std::string& source;
  ProblemList* problems = nullptr;
};

[[noreturn]] void fail(const Context& context, const std::string& path, const Node* node,
                       const std::string& message) {
  fail_at(context.source, path, node, message);
}

template <typename Value>
std::string join_names(const Value& names) {
  std::string out;
  for (const auto& name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

// One mapping of the config: checks that it is a mapping (null: empty) whose keys are all
// allowed, then hands out its values by key.
class Section {
 public:
  Section(const Context& context, const Node* node, std::string path,
          std::vector<std::string_view> allowed)
      : context_(context), node_(node), path_(std::move(path)), allowed_(std::move(allowed)) {
    if (node_ == nullptr || node_->kind == Kind::Null) return;
    if (node_->kind != Kind::Mapping) {
      fail(context_, path_, node_, detail::concat("expected a mapping, got ", describe(*node_)));
    }
    // Every unknown key is a problem of its own: with a problem list they are all recorded
    // and the known keys stay readable; without one the first throws.
    for (std::size_t i = 0; i < node_->keys.size(); ++i) {
      const std::string& key = node_->keys[i];
      if (std::find(allowed_.begin(), allowed_.end(), key) != allowed_.end()) continue;
      const std::string level = path_.empty() ? std::string("allowed top-level keys")
                                              : detail::concat("allowed keys of ", path_);
      const auto unknown = [&] {
        fail(context_, join_path(path_, key), &node_->children[i],
             detail::concat("unknown key '", key, "'; ", level, ": ", join_names(allowed_)));
      };
      if (context_.problems == nullptr) unknown();
      context_.problems->record(unknown);
    }
  }

  const Node* get(std::string_view key) const {
    return node_ == nullptr || node_->kind != Kind::Mapping ? nullptr : node_->find(key);
  }
  std::string path_of(std::string_view key) const { return join_path(path_, key); }
  const Node* node() const { return node_; }
  const Context& context() const { return context_; }

 private:
  const Context& context_;
  const Node* node_;
  std::string path_;
  std::vector<std::string_view> allowed_;
};

void check_range(const Context& context, const std::string& path, const Node& node, double value,
                 const Range& range) {
  if (!range.contains(value)) {
    fail(context, path, &node, detail::concat("must be ", range.describe(), ", got ", node.text));
  }
}

bool is_plain_scalar(const Node& node) {
  return node.kind == Kind::Scalar && !node.quoted;
}

double read_double(const Context& context, const std::string& path, const Node& node,
                   const Range& range) {
  double value = 0;
  if (!is_plain_scalar(node) || !parse_double(node.text, value)) {
    fail(context, path, &node, detail::concat("expected a number, got ", describe(node)));
  }
  check_range(context, path, node, value, range);
  return value;
}

std::int64_t read_int64(const Context& context, const std::string& path, const Node& node,
                        std::int64_t min, std::int64_t max) {
  std::int64_t value = 0;
  if (!is_plain_scalar(node) || !parse_integer(node.text, value)) {
    fail(context, path, &node, detail::concat("expected an integer, got ", describe(node)));
  }
  if (value < min) {
    fail(context, path, &node, detail::concat("must be >= ", min, ", got ", node.text));
  }
  if (value > max) {
    fail(context, path, &node, detail::concat("must be <= ", max, ", got ", node.text));
  }
  return value;
}

int read_int(const Context& context, const std::string& path, const Node& node, int min) {
  return static_cast<int>(read_int64(context, path, node, min, std::numeric_limits<int>::max()));
}

std::uint64_t read_uint64(const Context& context, const std::string& path, const Node& node) {
  std::uint64_t value = 0;
  if (!is_plain_scalar(node) || !parse_integer(node.text, value)) {
    fail(context, path, &node,
         detail::concat("expected an integer in [0, 2^64), got ", describe(node)));
  }
  return value;
}

bool read_bool(const Context& context, const std::string& path, const Node& node) {
  if (is_plain_scalar(node)) {
    if (node.text == "true" || node.text == "True" || node.text == "TRUE") return true;
    if (node.text == "false" || node.text == "False" || node.text == "FALSE") return false;
  }
  fail(context, path, &node, detail::concat("expected true or false, got ", describe(node)));
}

// Strings: any scalar; null is the empty string.
std::string read_string(const Context& context, const std::string& path, const Node& node) {
  if (node.kind == Kind::Null) return {};
  if (node.kind != Kind::Scalar) {
    fail(context, path, &node, detail::concat("expected a string, got ", describe(node)));
  }
  return node.text;
}

std::string read_nonempty_string(const Context& context, const std::string& path,
                                 const Node& node) {
  std::string value = read_string(context, path, node);
  if (value.empty()) fail(context, path, &node, "must not be empty");
  return value;
}

std::string read_choice(const Context& context, const std::string& path, const Node& node,
                        const std::vector<std::string_view>& choices) {
  if (node.kind != Kind::Scalar) {
    fail(context, path, &node,
         detail::concat("expected one of ", join_names(choices), ", got ", describe(node)));
  }
  for (std::string_view choice : choices) {
    if (choice == node.text) return node.text;
  }
  fail(context, path, &node,
       detail::concat("unknown value '", node.text, "'; allowed: ", join_names(choices)));
}

// One of `choices` or an integer >= min (method.aux.width), as its text ("16" for +16).
std::string read_choice_or_integer(const Context& context, const std::string& path,
                                   const Node& node, const std::vector<std::string_view>& choices,
                                   std::int64_t min, std::int64_t max) {
  if (is_plain_scalar(node)) {
    for (std::string_view choice : choices) {
      if (choice == node.text) return node.text;
    }
    std::int64_t integer = 0;
    if (parse_integer(node.text, integer)) {
      return std::to_string(read_int64(context, path, node, min, max));
    }
  }
  fail(context, path, &node,
       detail::concat("expected ", join_names(choices), " or an integer >= ", min, ", got ",
                      describe(node)));
}

std::vector<int> read_int_list(const Context& context, const std::string& path, const Node& node,
                               int min) {
  if (node.kind != Kind::Sequence) {
    fail(context, path, &node,
         detail::concat("expected a sequence of integers, got ", describe(node)));
  }
  std::vector<int> values;
  for (std::size_t i = 0; i < node.children.size(); ++i) {
    values.push_back(read_int(context, detail::concat(path, "[", i, "]"), node.children[i], min));
  }
  return values;
}

bool is_device_name(std::string_view device) {
  if (device == "auto" || device == "cpu" || device == "cuda") return true;
  constexpr std::string_view kCuda = "cuda:";
  if (device.substr(0, kCuda.size()) != kCuda) return false;
  const std::string_view index = device.substr(kCuda.size());
  int value = 0;
  return !index.empty() && index.front() != '+' && index.front() != '-' &&
         parse_integer(index, value) && value >= 0;
}

// ---- TrialConfig to Node

Node scalar_node(std::string text, bool quoted = false) {
  Node node;
  node.kind = Kind::Scalar;
  node.text = std::move(text);
  node.quoted = quoted;
  return node;
}
Node string_node(const std::string& text) {
  return scalar_node(text, needs_quotes_as_string(text));
}
Node number_node(double value) {
  return scalar_node(format_yaml_number(value));
}
template <typename Integer>
Node integer_node(Integer value) {
  return scalar_node(std::to_string(value));
}
Node bool_node(bool value) {
  return scalar_node(value ? "true" : "false");
}
Node enum_node(std::string_view name) {
  return scalar_node(std::string(name));
}

// ---- reading a config through the key table

// A key's value from its node, checked by the key's type and range.
KeyValue read_value(const Context& context, const ConfigKey& key, const std::string& path,
                    const Node& node) {
  switch (key.type) {
    case KeyType::String: {
      if (key.string_rule == StringRule::NonEmpty) {
        return read_nonempty_string(context, path, node);
      }
      std::string value = read_string(context, path, node);
      if (key.string_rule == StringRule::Device && !is_device_name(value)) {
        fail(context, path, &node,
             detail::concat("expected auto, cpu, cuda or cuda:N, got ", describe(node)));
      }
      return value;
    }
    case KeyType::Integer:
      return read_int64(context, path, node, key.min, key.max);
    case KeyType::Uint64:
      return read_uint64(context, path, node);
    case KeyType::Float:
      return read_double(context, path, node, key.range);
    case KeyType::Bool:
      return read_bool(context, path, node);
    case KeyType::Choice:
      return read_choice(context, path, node, key.choices);
    case KeyType::ChoiceOrInteger:
      return read_choice_or_integer(context, path, node, key.choices, key.min, key.max);
    case KeyType::IntegerList: {
      std::vector<int> values = read_int_list(context, path, node, static_cast<int>(key.min));
      for (std::size_t i = 1; i < values.size(); ++i) {
        if (values[i] <= values[i - 1]) {
          fail(context, path, &node,
               detail::concat("must be strictly increasing, got ", values[i - 1], " before ",
                              values[i]));
        }
      }
      return values;
    }
  }
  MD_CHECK(false, "key type ", static_cast<int>(key.type), " has no reader");
  return {};
}

std::string_view last_segment(std::string_view path) {
  const std::size_t dot = path.rfind('.');
  return dot == std::string_view::npos ? path : path.substr(dot + 1);
}

std::string_view parent_of(std::string_view path) {
  const std::size_t dot = path.rfind('.');
  return dot == std::string_view::npos ? std::string_view() : path.substr(0, dot);
}

// The keys directly under `parent` ("" for the top level), in table order: the keys that
// mapping allows.
std::vector<std::string_view> child_keys(std::string_view parent) {
  std::vector<std::string_view> paths;
  for (const ConfigKey& key : trial_config_keys()) paths.push_back(key.path);
  return child_segments(paths, parent);
}

// ---- the cross-key rules

// An idx set whose four files are all given as absolute paths needs no dataset.root.
bool idx_files_absolute(const Section& dataset, const TrialConfig& config) {
  if (config.dataset.name != DatasetName::Idx) return false;
  for (std::string_view key : {"train_images", "train_labels", "test_images", "test_labels"}) {
    const Node* file = dataset.get(key);
    if (file == nullptr || file->kind != Kind::Scalar ||
        !std::filesystem::path(file->text).is_absolute()) {
      return false;
    }
  }
  return true;
}

// A required key (no default) that is absent.
void check_required(const ConfigKey& key, const Section& section, const TrialConfig& config) {
  const std::string path = section.path_of(last_segment(key.path));
  if (key.path == key_path::dataset_root) {
    if (idx_files_absolute(section, config)) return;
    fail(section.context(), path, section.node(),
         config.dataset.name == DatasetName::Idx
             ? "required key is missing (unless all four idx files are absolute paths)"
             : "required key is missing");
  }
  if (!key.choices.empty()) {
    fail(section.context(), path, section.node(),
         detail::concat("required key is missing; allowed: ", join_names(key.choices)));
  }
  fail(section.context(), path, section.node(), "required key is missing");
}

void check_dataset(const Section& section, const DatasetConfig& dataset) {
  const Context& context = section.context();
  if (dataset.train_count > 0 && dataset.validation_count >= dataset.train_count) {
    fail(context, section.path_of("validation_count"), section.node(),
         detail::concat("must be below ", key_path::dataset_train_count, " (", dataset.train_count,
                        "), got ", dataset.validation_count));
  }
  if (dataset.name == DatasetName::Imagenet && dataset.resize_size < dataset.crop_size) {
    fail(context, section.path_of("resize_size"), section.node(),
         detail::concat("must be at least ", key_path::dataset_crop_size, " (", dataset.crop_size,
                        "), got ", dataset.resize_size));
  }
}

void check_optim(const Section& section, const OptimConfig& optim) {
  if (optim.nesterov && optim.momentum == 0.0) {
    fail(section.context(), section.path_of("nesterov"), section.get("nesterov"),
         detail::concat("needs ", section.path_of("momentum"), " > 0"));
  }
}

// Reads a trial config tree row by row of the key table. Each mapping is checked (a mapping,
// no unknown keys) when its first row is reached, and each section's cross-key rules run when
// its last row is read, so the first mistake in document-independent table order is reported.
class TrialReader {
 public:
  TrialReader(const Context& context, const Node& root, const std::string& root_path)
      : context_(context) {
    sections_.emplace(std::string(), Section(context, &root, root_path, child_keys("")));
  }

  // Every problem is recorded and reading goes on, so that all of them are reported together;
  // a bad dataset.name ends it at once, since which keys exist depends on it.
  TrialConfig read() {
    TrialConfig config;
    std::string_view current_top;
    for (const ConfigKey& key : trial_config_keys()) {
      const std::string_view top = key.path.substr(0, key.path.find('.'));
      if (top != current_top) finish(current_top, config);
      current_top = top;
      const bool read =
          context_.problems->record([&] { read_key(key, section(parent_of(key.path)), config); });
      if (!read && key.path == key_path::dataset_name) break;
    }
    if (!current_top.empty()) finish(current_top, config);
    context_.problems->throw_if_any();
    return config;
  }

 private:
  const Section& section(std::string_view prefix) {
    const auto found = sections_.find(std::string(prefix));
    if (found != sections_.end()) return found->second;
    const Section& parent = section(parent_of(prefix));
    const std::string_view key = last_segment(prefix);
    // A section that is not a mapping is one problem; its keys then read as absent.
    std::optional<Section> made;
    if (!context_.problems->record([&] {
          made.emplace(context_, parent.get(key), parent.path_of(key), child_keys(prefix));
        })) {
      made.emplace(context_, nullptr, parent.path_of(key), child_keys(prefix));
    }
    return sections_.emplace(std::string(prefix), std::move(*made)).first->second;
  }

  void read_key(const ConfigKey& key, const Section& section, TrialConfig& config) {
    const std::string_view name = last_segment(key.path);
    const Node* node = section.get(name);
    if (node == nullptr) {
      if (!key.default_value) {
        check_required(key, section, config);
      } else if (key_exists(key, config)) {
        key.binding.set(config, *key.default_value);
      }
      return;
    }
    const std::string path = section.path_of(name);
    if (!key_exists(key, config)) {
      fail(context_, path, node,
           detail::concat("only allowed with ", condition_text(key.condition), ", not ",
                          to_string(config.dataset.name)));
    }
    key.binding.set(config, read_value(context_, key, path, *node));
  }

  void finish(std::string_view top, const TrialConfig& config) {
    if (top == "dataset") {
      context_.problems->record([&] { check_dataset(section(top), config.dataset); });
    }
    if (top == "optim") {
      context_.problems->record([&] { check_optim(section(top), config.optim); });
    }
  }

  const Context& context_;
  std::map<std::string, Section> sections_;
};

// ---- TrialConfig to Node (through the key table)

Node value_node(const ConfigKey& key, const KeyValue& value) {
  switch (key.type) {
    case KeyType::String:
      return string_node(std::get<std::string>(value));
    case KeyType::Integer:
      return scalar_node(std::to_string(std::get<std::int64_t>(value)));
    case KeyType::Uint64:
      return scalar_node(std::to_string(std::get<std::uint64_t>(value)));
    case KeyType::Float:
      return number_node(std::get<double>(value));
    case KeyType::Bool:
      return bool_node(std::get<bool>(value));
    case KeyType::Choice:
    case KeyType::ChoiceOrInteger:
      return enum_node(std::get<std::string>(value));
    case KeyType::IntegerList: {
      Node sequence;
      sequence.kind = Kind::Sequence;
      for (int item : std::get<std::vector<int>>(value)) {
        sequence.children.push_back(scalar_node(std::to_string(item)));
      }
      return sequence;
    }
  }
  MD_CHECK(false, "key type ", static_cast<int>(key.type), " has no writer");
  return {};
}

// Appends `value` at a dotted path of `root`, creating the mappings on the way in order.
void add_at(Node& root, std::string_view path, Node value) {
  Node* node = &root;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = path.find('.', start);
    const std::string_view key =
        path.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (dot == std::string_view::npos) {
      node->keys.emplace_back(key);
      node->children.push_back(std::move(value));
      return;
    }
    Node* next = node->find(key);
    if (next == nullptr) {
      node->keys.emplace_back(key);
      Node mapping;
      mapping.kind = Kind::Mapping;
      node->children.push_back(std::move(mapping));
      next = &node->children.back();
    }
    node = next;
    start = dot + 1;
  }
}

// Which keys to_node writes: every key that exists (to_yaml), or the text a trial id hashes,
// by each key's IdRule.
enum class NodeKeys { All, Identity };

Node to_node(const TrialConfig& config, NodeKeys keys) {
  Node root;
  root.kind = Kind::Mapping;
  for (const ConfigKey& key : trial_config_keys()) {
    if (!key_exists(key, config)) continue;
    KeyValue value = key.binding.get(config);
    if (key.omit_when_empty && std::get<std::string>(value).empty()) continue;
    if (keys == NodeKeys::Identity) {
      if (key.id_rule == IdRule::LeftOut) continue;
      if (key.id_rule == IdRule::NonDefault && value == *key.default_value) continue;
      if (key.id_rule == IdRule::Reset) value = *key.default_value;
    }
    add_at(root, key.path, value_node(key, value));
  }
  return root;
}

std::string read_file_text(const std::string& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    throw InputError(detail::concat(path, ": cannot read the config file: it is a directory"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw InputError(detail::concat(path, ": cannot read the config file: ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw InputError(detail::concat(path, ": cannot read the config file"));
  return text.str();
}

}  // namespace

bool TrialConfig::operator==(const TrialConfig& other) const {
  return dataset == other.dataset && model == other.model && method == other.method &&
         optim == other.optim && augment == other.augment && runtime == other.runtime;
}

std::string format_yaml_number(double value) {
  MD_CHECK(std::isfinite(value), "cannot write ", value, " as a YAML number");
  std::array<char, 64> buffer{};
  const auto [end, error] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  MD_CHECK(error == std::errc(), "to_chars failed");
  std::string text(buffer.data(), end);
  const std::size_t exponent = text.find('e');
  if (text.find('.') == std::string::npos) {
    text.insert(exponent == std::string::npos ? text.size() : exponent, ".0");
  }
  return text;
}

// ---- ConfigTree

struct ConfigTree::Impl {
  Node node;
  std::string source;
  std::string path;
};

ConfigTree::ConfigTree(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ConfigTree::ConfigTree(const ConfigTree& other) : impl_(std::make_unique<Impl>(*other.impl_)) {}
ConfigTree& ConfigTree::operator=(const ConfigTree& other) {
  if (this != &other) impl_ = std::make_unique<Impl>(*other.impl_);
  return *this;
}
ConfigTree::ConfigTree(ConfigTree&& other) noexcept = default;
ConfigTree& ConfigTree::operator=(ConfigTree&& other) noexcept = default;
ConfigTree::~ConfigTree() = default;

ConfigTree ConfigTree::from_text(const std::string& text, const std::string& source_name) {
  auto impl = std::make_unique<Impl>();
  impl->node = parse_yaml(text, source_name, "YAML syntax error");
  impl->source = source_name;
  return ConfigTree(std::move(impl));
}

ConfigTree ConfigTree::from_file(const std::string& path) {
  return from_text(read_file_text(path), path);
}

const std::string& ConfigTree::source_name() const {
  return impl_->source;
}
const std::string& ConfigTree::path() const {
  return impl_->path;
}
ConfigTree::Kind ConfigTree::kind() const {
  return impl_->node.kind;
}

void ConfigTree::fail(const std::string& message) const {
  fail_at(impl_->source, impl_->path, &impl_->node, message);
}

std::vector<std::string> ConfigTree::keys() const {
  if (impl_->node.kind == Kind::Null) return {};
  if (impl_->node.kind != Kind::Mapping) {
    fail(detail::concat("expected a mapping, got ", describe(impl_->node)));
  }
  return impl_->node.keys;
}

bool ConfigTree::contains(const std::string& key) const {
  return impl_->node.kind == Kind::Mapping && impl_->node.find(key) != nullptr;
}

ConfigTree ConfigTree::child(const std::string& key) const {
  if (impl_->node.kind != Kind::Mapping && impl_->node.kind != Kind::Null) {
    fail(detail::concat("expected a mapping, got ", describe(impl_->node)));
  }
  const Node* node = impl_->node.find(key);
  if (node == nullptr) {
    fail_at(impl_->source, join_path(impl_->path, key), &impl_->node, "required key is missing");
  }
  return ConfigTree(
      std::make_unique<Impl>(Impl{*node, impl_->source, join_path(impl_->path, key)}));
}

std::size_t ConfigTree::size() const {
  if (impl_->node.kind != Kind::Sequence) {
    fail(detail::concat("expected a sequence, got ", describe(impl_->node)));
  }
  return impl_->node.children.size();
}

ConfigTree ConfigTree::element(std::size_t index) const {
  const std::size_t count = size();
  MD_CHECK(index < count, "index ", index, " out of range for a sequence of ", count);
  return ConfigTree(std::make_unique<Impl>(Impl{impl_->node.children[index], impl_->source,
                                                detail::concat(impl_->path, "[", index, "]")}));
}

const std::string& ConfigTree::scalar() const {
  if (impl_->node.kind != Kind::Scalar) {
    fail(detail::concat("expected a scalar, got ", describe(impl_->node)));
  }
  return impl_->node.text;
}

bool ConfigTree::is_quoted() const {
  return impl_->node.kind == Kind::Scalar && impl_->node.quoted;
}

void ConfigTree::set(const std::string& key_path, const ConfigTree& value,
                     const std::string& origin) {
  const std::string where = origin.empty() ? detail::concat("set ", key_path) : origin;
  Node replacement = value.impl_->node;  // copied first: value may be this tree
  set_origin(replacement, where);
  std::vector<std::string> keys;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = key_path.find('.', start);
    keys.push_back(key_path.substr(start, dot == std::string::npos ? dot : dot - start));
    if (keys.back().empty()) {
      throw InputError(
          detail::concat(impl_->source, ": ", where, ": invalid key path '", key_path, "'"));
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  Node* node = &impl_->node;
  std::string path = impl_->path;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (node->kind == Kind::Null) {
      node->kind = Kind::Mapping;
      if (node->origin.empty() && node->line < 0) node->origin = where;
    }
    if (node->kind != Kind::Mapping) {
      fail_at(impl_->source, path, node,
              detail::concat("cannot set ", key_path, " (", where,
                             "): ", path.empty() ? std::string("the document") : path, " is ",
                             kind_name(node->kind), ", not a mapping"));
    }
    path = join_path(path, keys[i]);
    Node* next = node->find(keys[i]);
    if (next == nullptr) {
      node->keys.push_back(keys[i]);
      Node created;
      created.origin = where;
      node->children.push_back(std::move(created));
      next = &node->children.back();
    }
    node = next;
  }
  *node = std::move(replacement);
}

void ConfigTree::set(const std::string& key_path, const std::string& yaml_value,
                     const std::string& origin) {
  const std::string where =
      origin.empty() ? detail::concat("--set ", key_path, "=", yaml_value) : origin;
  auto value = std::make_unique<Impl>();
  value->node =
      parse_yaml(yaml_value, detail::concat(impl_->source, ": ", where), "invalid YAML value");
  value->source = impl_->source;
  set(key_path, ConfigTree(std::move(value)), where);
}

void ConfigTree::apply_override(const std::string& assignment) {
  const std::size_t equals = assignment.find('=');
  if (equals == std::string::npos || equals == 0) {
    throw InputError(
        detail::concat(impl_->source, ": --set '", assignment, "': expected key.path=value"));
  }
  set(assignment.substr(0, equals), assignment.substr(equals + 1),
      detail::concat("--set ", assignment));
}

std::string ConfigTree::to_text() const {
  return emit_document(impl_->node);
}

// ---- trial configs

TrialConfig resolve(const ConfigTree& tree, const std::string& source_name) {
  const ConfigTree::Impl& impl = *tree.impl_;
  const std::string& source = source_name.empty() ? impl.source : source_name;
  ProblemList problems;
  const Context context{source, &problems};
  if (impl.node.kind != Kind::Mapping && impl.node.kind != Kind::Null) {
    fail(context, impl.path, &impl.node,
         detail::concat("expected a mapping of config sections, got ", describe(impl.node)));
  }
  TrialConfig config = TrialReader(context, impl.node, impl.path).read();
  config.source = source;
  return config;
}

TrialConfig parse_trial_config(const std::string& yaml_text, const std::string& source_name,
                               const std::vector<std::string>& overrides) {
  ConfigTree tree = ConfigTree::from_text(yaml_text, source_name);
  for (const std::string& assignment : overrides) tree.apply_override(assignment);
  return resolve(tree);
}

TrialConfig load_trial_config(const std::string& path, const std::vector<std::string>& overrides) {
  ConfigTree tree = ConfigTree::from_file(path);
  for (const std::string& assignment : overrides) tree.apply_override(assignment);
  return resolve(tree);
}

std::string to_yaml(const TrialConfig& config) {
  return emit_document(to_node(config, NodeKeys::All));
}

std::string trial_id(const TrialConfig& config) {
  return hex16(fnv1a64(emit_document(to_node(config, NodeKeys::Identity))));
}

}  // namespace md::io
