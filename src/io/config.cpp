// Trial config: yaml-cpp parses the text once into our own small tree (Node), which keeps every
// node's line and column or the override that set it, copies deeply without losing them (unlike
// YAML::Clone), and is what overrides edit and the validator reads. The validator is a plain
// walk over fixed key lists, one function per section: every user mistake becomes an InputError
// naming source, key path and location. Output YAML (to_yaml, ConfigTree::to_text) is written
// here, not by yaml-cpp's emitter, so the canonical text and with it every trial id depend only
// on this file. Nothing here knows what an architecture or a data set is beyond its spelling.
#include "io/config.h"

#include "core/hash.h"

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
#include <sstream>
#include <utility>

#include "core/error.h"

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
      out += pad + key_text(node.keys[i]) + ":";
      if (is_inline(child)) {
        out += " " + inline_text(child) + "\n";
      } else {
        out += "\n";
        emit_block(child, indent + 2, out);
      }
    }
    return;
  }
  for (const Node& child : node.children) {
    if (is_inline(child)) {
      out += pad + "- " + inline_text(child) + "\n";
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

// What every message of one validation starts with: the source name.
struct Context {
  const std::string& source;
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
    for (std::size_t i = 0; i < node_->keys.size(); ++i) {
      const std::string& key = node_->keys[i];
      if (std::find(allowed_.begin(), allowed_.end(), key) == allowed_.end()) {
        const std::string level = path_.empty() ? std::string("allowed top-level keys")
                                                : detail::concat("allowed keys of ", path_);
        fail(context_, join_path(path_, key), &node_->children[i],
             detail::concat("unknown key '", key, "'; ", level, ": ", join_names(allowed_)));
      }
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

// A bound on a number: value > min or >= min, and value < max or <= max.
struct Range {
  double min = -std::numeric_limits<double>::infinity();
  bool min_open = false;
  double max = std::numeric_limits<double>::infinity();
  bool max_open = false;

  bool contains(double value) const {
    const bool above = min_open ? value > min : value >= min;
    const bool below = max_open ? value < max : value <= max;
    return above && below;
  }
  std::string describe() const {
    if (std::isinf(max)) {
      return detail::concat(min_open ? "> " : ">= ", format_number(min));
    }
    return detail::concat("in ", min_open ? "(" : "[", format_number(min), ", ", format_number(max),
                          max_open ? ")" : "]");
  }
  static std::string format_number(double value) {
    std::ostringstream out;
    out << value;
    return out.str();
  }
};

Range greater_than(double min) {
  return Range{.min = min, .min_open = true};
}
Range at_least(double min) {
  return Range{.min = min};
}

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

template <typename Enum>
struct EnumName {
  std::string_view name;
  Enum value;
};

constexpr std::array<EnumName<DatasetName>, 3> kDatasetNames{{
    {"cifar100", DatasetName::Cifar100},
    {"idx", DatasetName::Idx},
    {"imagenet", DatasetName::Imagenet},
}};
constexpr std::array<EnumName<MethodName>, 3> kMethodNames{{
    {"baseline", MethodName::Baseline},
    {"byot", MethodName::Byot},
    {"metadistiller", MethodName::MetaDistiller},
}};
constexpr std::array<EnumName<MetaData>, 2> kMetaData{{
    {"next_batch", MetaData::NextBatch},
    {"holdout", MetaData::Holdout},
}};
constexpr std::array<EnumName<GeneratorResolution>, 2> kGeneratorResolutions{{
    {"deepest", GeneratorResolution::Deepest},
    {"stage", GeneratorResolution::Stage},
}};
constexpr std::array<EnumName<MetaDifference>, 2> kMetaDifferences{{
    {"central", MetaDifference::Central},
    {"forward", MetaDifference::Forward},
}};
constexpr std::array<EnumName<MetaUpdateOrder>, 2> kMetaUpdateOrders{{
    {"student_first", MetaUpdateOrder::StudentFirst},
    {"generator_first", MetaUpdateOrder::GeneratorFirst},
}};
constexpr std::array<EnumName<DeepestCe>, 2> kDeepestCe{{
    {"one", DeepestCe::One},
    {"one_minus_alpha", DeepestCe::OneMinusAlpha},
}};
constexpr std::array<EnumName<HintReduction>, 2> kHintReductions{{
    {"mean", HintReduction::Mean},
    {"sum", HintReduction::Sum},
}};
// The named rules of method.aux.width; AuxWidthRule::Fixed is written as its integer.
constexpr std::array<EnumName<AuxWidthRule>, 2> kAuxWidthRules{{
    {"input_quarter", AuxWidthRule::InputQuarter},
    {"last_stage_quarter", AuxWidthRule::LastStageQuarter},
}};
constexpr std::array<EnumName<MetaOptimizer>, 2> kMetaOptimizers{{
    {"sgd", MetaOptimizer::Sgd},
    {"adam", MetaOptimizer::Adam},
}};
constexpr std::array<EnumName<ScheduleName>, 2> kScheduleNames{{
    {"multistep", ScheduleName::Multistep},
    {"cosine", ScheduleName::Cosine},
}};
constexpr std::array<EnumName<Precision>, 3> kPrecisions{{
    {"fp32", Precision::Fp32},
    {"tf32", Precision::Tf32},
    {"bf16", Precision::Bf16},
}};
constexpr std::array<EnumName<DataOnDevice>, 3> kDataOnDevice{{
    {"auto", DataOnDevice::Auto},
    {"true", DataOnDevice::On},
    {"false", DataOnDevice::Off},
}};

template <typename Enum, std::size_t Count>
std::string_view enum_to_string(const std::array<EnumName<Enum>, Count>& table, Enum value) {
  for (const auto& entry : table) {
    if (entry.value == value) return entry.name;
  }
  MD_CHECK(false, "enum value ", static_cast<int>(value), " has no name");
  return {};
}

template <typename Enum, std::size_t Count>
std::string enum_names(const std::array<EnumName<Enum>, Count>& table) {
  std::vector<std::string_view> names;
  for (const auto& entry : table) names.push_back(entry.name);
  return join_names(names);
}

template <typename Enum, std::size_t Count>
Enum read_enum(const Context& context, const std::string& path, const Node& node,
               const std::array<EnumName<Enum>, Count>& table) {
  if (node.kind != Kind::Scalar) {
    fail(context, path, &node,
         detail::concat("expected one of ", enum_names(table), ", got ", describe(node)));
  }
  for (const auto& entry : table) {
    if (entry.name == node.text) return entry.value;
  }
  fail(context, path, &node,
       detail::concat("unknown value '", node.text, "'; allowed: ", enum_names(table)));
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

// Reads section key `key` with `read` when present; absent keys keep their defaults.
template <typename Read>
void optional_key(const Section& section, std::string_view key, Read read) {
  if (const Node* node = section.get(key)) read(section.path_of(key), *node);
}

// The keys of every section, in canonical (to_yaml) order.
const std::vector<std::string_view> kTopKeys = {"dataset", "model",   "method",
                                                "optim",   "augment", "runtime"};
const std::vector<std::string_view> kDatasetKeys = {
    "name",      "root",        "train_images", "train_labels", "test_images",
    "test_labels", "crop_size", "resize_size",  "min_scale",    "local_copy",
    "train_count", "validation_count"};
const std::vector<std::string_view> kModelKeys = {"arch", "num_classes", "in_channels",
                                                  "init_from"};
const std::vector<std::string_view> kMethodKeys = {
    "name",       "temperature",    "alpha", "hint", "kd_temperature_squared",
    "deepest_ce", "hint_reduction", "aux",   "meta"};
const std::vector<std::string_view> kAuxKeys = {"width"};
const std::vector<std::string_view> kMetaKeys = {
    "every",     "epsilon", "data", "holdout_fraction", "optimizer", "generator_width",
    "generator_resolution", "difference", "label_weight", "frozen", "update_order"};
const std::vector<std::string_view> kMetaOptimizerKeys = {"name", "lr"};
const std::vector<std::string_view> kOptimKeys = {"epochs",          "batch_size", "lr",
                                                  "momentum",        "nesterov",   "weight_decay",
                                                  "label_smoothing", "schedule"};
const std::vector<std::string_view> kScheduleKeys = {"name", "milestones", "gamma",
                                                     "warmup_epochs"};
const std::vector<std::string_view> kAugmentKeys = {"random_crop", "flip", "cutout"};
const std::vector<std::string_view> kRuntimeKeys = {"device",
                                                    "data_on_device",
                                                    "cuda_graph",
                                                    "precision",
                                                    "threads",
                                                    "seed",
                                                    "deterministic",
                                                    "ranks_per_trial",
                                                    "log_every",
                                                    "checkpoint_every_epochs",
                                                    "max_train_batches",
                                                    "max_eval_batches"};

constexpr std::array<std::string_view, 4> kIdxFileKeys = {"train_images", "train_labels",
                                                          "test_images", "test_labels"};

DatasetConfig read_dataset(const Section& section) {
  const Context& context = section.context();
  DatasetConfig dataset;
  const Node* name = section.get("name");
  if (name == nullptr) {
    fail(context, section.path_of("name"), section.node(),
         detail::concat("required key is missing; allowed: ", enum_names(kDatasetNames)));
  }
  dataset.name = read_enum(context, section.path_of("name"), *name, kDatasetNames);
  // An idx set whose four files are all given as absolute paths needs no root.
  const Node* root = section.get("root");
  const bool idx_files_absolute =
      dataset.name == DatasetName::Idx &&
      std::all_of(kIdxFileKeys.begin(), kIdxFileKeys.end(), [&](std::string_view key) {
        const Node* file = section.get(key);
        return file != nullptr && file->kind == Kind::Scalar &&
               std::filesystem::path(file->text).is_absolute();
      });
  if (root == nullptr && !idx_files_absolute) {
    fail(context, section.path_of("root"), section.node(),
         dataset.name == DatasetName::Idx
             ? "required key is missing (unless all four idx files are absolute paths)"
             : "required key is missing");
  }
  if (root != nullptr) dataset.root = read_nonempty_string(context, section.path_of("root"), *root);

  std::array<std::string*, 4> files = {&dataset.train_images, &dataset.train_labels,
                                       &dataset.test_images, &dataset.test_labels};
  if (dataset.name == DatasetName::Idx) {
    dataset.train_images = "train-images-idx3-ubyte.gz";
    dataset.train_labels = "train-labels-idx1-ubyte.gz";
    dataset.test_images = "t10k-images-idx3-ubyte.gz";
    dataset.test_labels = "t10k-labels-idx1-ubyte.gz";
  }
  for (std::size_t i = 0; i < kIdxFileKeys.size(); ++i) {
    const Node* node = section.get(kIdxFileKeys[i]);
    if (node == nullptr) continue;
    const std::string path = section.path_of(kIdxFileKeys[i]);
    if (dataset.name != DatasetName::Idx) {
      fail(context, path, node,
           detail::concat("only allowed with dataset.name idx, not ", to_string(dataset.name)));
    }
    *files[i] = read_nonempty_string(context, path, *node);
  }
  const auto imagenet_only = [&](std::string_view key, const auto& read) {
    const Node* node = section.get(key);
    if (node == nullptr) return;
    const std::string path = section.path_of(key);
    if (dataset.name != DatasetName::Imagenet) {
      fail(context, path, node,
           detail::concat("only allowed with dataset.name imagenet, not ", to_string(dataset.name)));
    }
    read(path, *node);
  };
  imagenet_only("crop_size", [&](const std::string& path, const Node& node) {
    dataset.crop_size = read_int(context, path, node, 8);
  });
  imagenet_only("resize_size", [&](const std::string& path, const Node& node) {
    dataset.resize_size = read_int(context, path, node, 8);
  });
  imagenet_only("min_scale", [&](const std::string& path, const Node& node) {
    dataset.min_scale = read_double(context, path, node, Range{0, true, 1, false});
  });
  imagenet_only("local_copy", [&](const std::string& path, const Node& node) {
    dataset.local_copy = read_bool(context, path, node);
  });
  for (const auto& [key, count] : {std::pair{"train_count", &dataset.train_count},
                                    std::pair{"validation_count", &dataset.validation_count}}) {
    const Node* node = section.get(key);
    if (node == nullptr) continue;
    const std::string path = section.path_of(key);
    if (dataset.name == DatasetName::Imagenet) {
      fail(context, path, node, "only allowed with dataset.name cifar100 or idx, not imagenet");
    }
    *count = read_int(context, path, *node, 0);
  }
  if (dataset.train_count > 0 && dataset.validation_count >= dataset.train_count) {
    fail(context, section.path_of("validation_count"), section.node(),
         detail::concat("must be below dataset.train_count (", dataset.train_count, "), got ",
                        dataset.validation_count));
  }
  if (dataset.name == DatasetName::Imagenet && dataset.resize_size < dataset.crop_size) {
    fail(context, section.path_of("resize_size"), section.node(),
         detail::concat("must be at least dataset.crop_size (", dataset.crop_size, "), got ",
                        dataset.resize_size));
  }
  return dataset;
}

ModelConfig read_model(const Section& section) {
  const Context& context = section.context();
  ModelConfig model;
  optional_key(section, "arch", [&](const std::string& path, const Node& node) {
    model.arch = read_nonempty_string(context, path, node);
  });
  optional_key(section, "num_classes", [&](const std::string& path, const Node& node) {
    model.num_classes = read_int(context, path, node, 0);
  });
  optional_key(section, "in_channels", [&](const std::string& path, const Node& node) {
    model.in_channels = read_int(context, path, node, 0);
  });
  optional_key(section, "init_from", [&](const std::string& path, const Node& node) {
    model.init_from = read_string(context, path, node);
  });
  return model;
}

MetaConfig read_meta(const Section& section) {
  const Context& context = section.context();
  MetaConfig meta;
  optional_key(section, "every", [&](const std::string& path, const Node& node) {
    meta.every = read_int(context, path, node, 1);
  });
  optional_key(section, "epsilon", [&](const std::string& path, const Node& node) {
    meta.epsilon = read_double(context, path, node, greater_than(0));
  });
  optional_key(section, "data", [&](const std::string& path, const Node& node) {
    meta.data = read_enum(context, path, node, kMetaData);
  });
  optional_key(section, "holdout_fraction", [&](const std::string& path, const Node& node) {
    meta.holdout_fraction = read_double(context, path, node, Range{0, true, 1, true});
  });
  const Section optimizer(context, section.get("optimizer"), section.path_of("optimizer"),
                          kMetaOptimizerKeys);
  optional_key(optimizer, "name", [&](const std::string& path, const Node& node) {
    meta.optimizer.name = read_enum(context, path, node, kMetaOptimizers);
  });
  optional_key(optimizer, "lr", [&](const std::string& path, const Node& node) {
    meta.optimizer.lr = read_double(context, path, node, greater_than(0));
  });
  optional_key(section, "generator_width", [&](const std::string& path, const Node& node) {
    meta.generator_width = read_int(context, path, node, 1);
  });
  optional_key(section, "generator_resolution", [&](const std::string& path, const Node& node) {
    meta.generator_resolution = read_enum(context, path, node, kGeneratorResolutions);
  });
  optional_key(section, "difference", [&](const std::string& path, const Node& node) {
    meta.difference = read_enum(context, path, node, kMetaDifferences);
  });
  optional_key(section, "label_weight", [&](const std::string& path, const Node& node) {
    meta.label_weight = read_double(context, path, node, at_least(0));
  });
  optional_key(section, "frozen", [&](const std::string& path, const Node& node) {
    meta.frozen = read_bool(context, path, node);
  });
  optional_key(section, "update_order", [&](const std::string& path, const Node& node) {
    meta.update_order = read_enum(context, path, node, kMetaUpdateOrders);
  });
  return meta;
}

// method.aux.width: input_quarter | last_stage_quarter | an integer >= 1.
AuxWidthConfig read_aux_width(const Context& context, const std::string& path, const Node& node) {
  if (is_plain_scalar(node)) {
    for (const auto& entry : kAuxWidthRules) {
      if (entry.name == node.text) return AuxWidthConfig{.rule = entry.value};
    }
    std::int64_t integer = 0;
    if (parse_integer(node.text, integer)) {
      return AuxWidthConfig{.rule = AuxWidthRule::Fixed,
                            .channels = read_int(context, path, node, 1)};
    }
  }
  fail(context, path, &node,
       detail::concat("expected ", enum_names(kAuxWidthRules), " or an integer >= 1, got ",
                      describe(node)));
}

MethodConfig read_method(const Section& section) {
  const Context& context = section.context();
  MethodConfig method;
  optional_key(section, "name", [&](const std::string& path, const Node& node) {
    method.name = read_enum(context, path, node, kMethodNames);
  });
  optional_key(section, "temperature", [&](const std::string& path, const Node& node) {
    method.temperature = read_double(context, path, node, greater_than(0));
  });
  optional_key(section, "alpha", [&](const std::string& path, const Node& node) {
    method.alpha = read_double(context, path, node, Range{0, false, 1, false});
  });
  optional_key(section, "hint", [&](const std::string& path, const Node& node) {
    method.hint = read_double(context, path, node, at_least(0));
  });
  optional_key(section, "kd_temperature_squared", [&](const std::string& path, const Node& node) {
    method.kd_temperature_squared = read_bool(context, path, node);
  });
  optional_key(section, "deepest_ce", [&](const std::string& path, const Node& node) {
    method.deepest_ce = read_enum(context, path, node, kDeepestCe);
  });
  optional_key(section, "hint_reduction", [&](const std::string& path, const Node& node) {
    method.hint_reduction = read_enum(context, path, node, kHintReductions);
  });
  const Section aux(context, section.get("aux"), section.path_of("aux"), kAuxKeys);
  optional_key(aux, "width", [&](const std::string& path, const Node& node) {
    method.aux.width = read_aux_width(context, path, node);
  });
  method.meta =
      read_meta(Section(context, section.get("meta"), section.path_of("meta"), kMetaKeys));
  return method;
}

ScheduleConfig read_schedule(const Section& section) {
  const Context& context = section.context();
  ScheduleConfig schedule;
  optional_key(section, "name", [&](const std::string& path, const Node& node) {
    schedule.name = read_enum(context, path, node, kScheduleNames);
  });
  optional_key(section, "milestones", [&](const std::string& path, const Node& node) {
    schedule.milestones = read_int_list(context, path, node, 1);
    for (std::size_t i = 1; i < schedule.milestones.size(); ++i) {
      if (schedule.milestones[i] <= schedule.milestones[i - 1]) {
        fail(context, path, &node,
             detail::concat("must be strictly increasing, got ", schedule.milestones[i - 1],
                            " before ", schedule.milestones[i]));
      }
    }
  });
  optional_key(section, "gamma", [&](const std::string& path, const Node& node) {
    schedule.gamma = read_double(context, path, node, Range{0, true, 1, false});
  });
  optional_key(section, "warmup_epochs", [&](const std::string& path, const Node& node) {
    schedule.warmup_epochs = read_int(context, path, node, 0);
  });
  return schedule;
}

OptimConfig read_optim(const Section& section) {
  const Context& context = section.context();
  OptimConfig optim;
  optional_key(section, "epochs", [&](const std::string& path, const Node& node) {
    optim.epochs = read_int(context, path, node, 1);
  });
  optional_key(section, "batch_size", [&](const std::string& path, const Node& node) {
    optim.batch_size = read_int(context, path, node, 1);
  });
  optional_key(section, "lr", [&](const std::string& path, const Node& node) {
    optim.lr = read_double(context, path, node, greater_than(0));
  });
  optional_key(section, "momentum", [&](const std::string& path, const Node& node) {
    optim.momentum = read_double(context, path, node, Range{0, false, 1, true});
  });
  optional_key(section, "nesterov", [&](const std::string& path, const Node& node) {
    optim.nesterov = read_bool(context, path, node);
  });
  optional_key(section, "weight_decay", [&](const std::string& path, const Node& node) {
    optim.weight_decay = read_double(context, path, node, at_least(0));
  });
  optional_key(section, "label_smoothing", [&](const std::string& path, const Node& node) {
    optim.label_smoothing = read_double(context, path, node, Range{0, false, 1, true});
  });
  optim.schedule = read_schedule(
      Section(context, section.get("schedule"), section.path_of("schedule"), kScheduleKeys));
  if (optim.nesterov && optim.momentum == 0.0) {
    fail(context, section.path_of("nesterov"), section.get("nesterov"),
         detail::concat("needs ", section.path_of("momentum"), " > 0"));
  }
  return optim;
}

AugmentConfig read_augment(const Section& section) {
  const Context& context = section.context();
  AugmentConfig augment;
  optional_key(section, "random_crop", [&](const std::string& path, const Node& node) {
    augment.random_crop = read_int(context, path, node, 0);
  });
  optional_key(section, "flip", [&](const std::string& path, const Node& node) {
    augment.flip = read_bool(context, path, node);
  });
  optional_key(section, "cutout", [&](const std::string& path, const Node& node) {
    augment.cutout = read_int(context, path, node, 0);
  });
  return augment;
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

RuntimeConfig read_runtime(const Section& section) {
  const Context& context = section.context();
  RuntimeConfig runtime;
  optional_key(section, "device", [&](const std::string& path, const Node& node) {
    runtime.device = read_string(context, path, node);
    if (!is_device_name(runtime.device)) {
      fail(context, path, &node,
           detail::concat("expected auto, cpu, cuda or cuda:N, got ", describe(node)));
    }
  });
  optional_key(section, "data_on_device", [&](const std::string& path, const Node& node) {
    runtime.data_on_device = read_enum(context, path, node, kDataOnDevice);
  });
  optional_key(section, "cuda_graph", [&](const std::string& path, const Node& node) {
    runtime.cuda_graph = read_bool(context, path, node);
  });
  optional_key(section, "precision", [&](const std::string& path, const Node& node) {
    runtime.precision = read_enum(context, path, node, kPrecisions);
  });
  optional_key(section, "threads", [&](const std::string& path, const Node& node) {
    runtime.threads = read_int(context, path, node, 0);
  });
  optional_key(section, "seed", [&](const std::string& path, const Node& node) {
    runtime.seed = read_uint64(context, path, node);
  });
  optional_key(section, "deterministic", [&](const std::string& path, const Node& node) {
    runtime.deterministic = read_bool(context, path, node);
  });
  optional_key(section, "ranks_per_trial", [&](const std::string& path, const Node& node) {
    runtime.ranks_per_trial = read_int(context, path, node, 1);
  });
  optional_key(section, "log_every", [&](const std::string& path, const Node& node) {
    runtime.log_every = read_int(context, path, node, 1);
  });
  optional_key(section, "checkpoint_every_epochs", [&](const std::string& path, const Node& node) {
    runtime.checkpoint_every_epochs = read_int(context, path, node, 0);
  });
  constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();
  optional_key(section, "max_train_batches", [&](const std::string& path, const Node& node) {
    runtime.max_train_batches = read_int64(context, path, node, 0, kInt64Max);
  });
  optional_key(section, "max_eval_batches", [&](const std::string& path, const Node& node) {
    runtime.max_eval_batches = read_int64(context, path, node, 0, kInt64Max);
  });
  return runtime;
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

class MappingBuilder {
 public:
  MappingBuilder() { node_.kind = Kind::Mapping; }
  MappingBuilder& add(std::string key, Node value) {
    node_.keys.push_back(std::move(key));
    node_.children.push_back(std::move(value));
    return *this;
  }
  Node build() { return std::move(node_); }

 private:
  Node node_;
};

// Which keys to_node writes: every key (to_yaml), or those a trial id hashes (all but
// runtime.data_on_device and runtime.cuda_graph; keys added after ids were pinned only away from
// their defaults).
enum class NodeKeys { All, Identity };

Node to_node(const TrialConfig& config, NodeKeys keys) {
  const DatasetConfig& dataset = config.dataset;
  MappingBuilder dataset_node;
  dataset_node.add("name", enum_node(to_string(dataset.name)));
  if (!dataset.root.empty()) dataset_node.add("root", string_node(dataset.root));  // idx: optional
  if (dataset.name == DatasetName::Idx) {
    dataset_node.add("train_images", string_node(dataset.train_images))
        .add("train_labels", string_node(dataset.train_labels))
        .add("test_images", string_node(dataset.test_images))
        .add("test_labels", string_node(dataset.test_labels));
  }
  if (dataset.name == DatasetName::Imagenet) {
    dataset_node.add("crop_size", integer_node(dataset.crop_size))
        .add("resize_size", integer_node(dataset.resize_size))
        .add("min_scale", number_node(dataset.min_scale))
        .add("local_copy", bool_node(dataset.local_copy));
  }
  // Added after trial ids were pinned: in the id only away from their defaults.
  if (dataset.name != DatasetName::Imagenet) {
    const DatasetConfig dataset_defaults;
    if (keys == NodeKeys::All || dataset.train_count != dataset_defaults.train_count)
      dataset_node.add("train_count", integer_node(dataset.train_count));
    if (keys == NodeKeys::All || dataset.validation_count != dataset_defaults.validation_count)
      dataset_node.add("validation_count", integer_node(dataset.validation_count));
  }

  const ModelConfig& model = config.model;
  Node model_node = MappingBuilder()
                        .add("arch", string_node(model.arch))
                        .add("num_classes", integer_node(model.num_classes))
                        .add("in_channels", integer_node(model.in_channels))
                        .add("init_from", string_node(model.init_from))
                        .build();

  const MethodConfig& method = config.method;
  const MetaConfig& meta = method.meta;
  MappingBuilder meta_builder;
  meta_builder.add("every", integer_node(meta.every))
                       .add("epsilon", number_node(meta.epsilon))
                       .add("data", enum_node(to_string(meta.data)))
                       .add("holdout_fraction", number_node(meta.holdout_fraction))
                       .add("optimizer", MappingBuilder()
                                             .add("name", enum_node(to_string(meta.optimizer.name)))
                                             .add("lr", number_node(meta.optimizer.lr))
                                             .build())
                       .add("generator_width", integer_node(meta.generator_width))
                       .add("generator_resolution", enum_node(to_string(meta.generator_resolution)))
                       .add("difference", enum_node(to_string(meta.difference)));
  // Keys added after trial ids were pinned enter the id only away from their defaults, so a
  // config that leaves them alone keeps its id.
  const MetaConfig meta_defaults;
  if (keys == NodeKeys::All || meta.label_weight != meta_defaults.label_weight)
    meta_builder.add("label_weight", number_node(meta.label_weight));
  if (keys == NodeKeys::All || meta.frozen != meta_defaults.frozen)
    meta_builder.add("frozen", bool_node(meta.frozen));
  if (keys == NodeKeys::All || meta.update_order != meta_defaults.update_order)
    meta_builder.add("update_order", enum_node(to_string(meta.update_order)));
  Node meta_node = meta_builder.build();
  MappingBuilder method_builder;
  method_builder.add("name", enum_node(to_string(method.name)))
      .add("temperature", number_node(method.temperature))
      .add("alpha", number_node(method.alpha))
      .add("hint", number_node(method.hint));
  // Added after trial ids were pinned (the BYOT reference settings): in the id only away from
  // their defaults.
  const MethodConfig method_defaults;
  if (keys == NodeKeys::All ||
      method.kd_temperature_squared != method_defaults.kd_temperature_squared)
    method_builder.add("kd_temperature_squared", bool_node(method.kd_temperature_squared));
  if (keys == NodeKeys::All || method.deepest_ce != method_defaults.deepest_ce)
    method_builder.add("deepest_ce", enum_node(to_string(method.deepest_ce)));
  if (keys == NodeKeys::All || method.hint_reduction != method_defaults.hint_reduction)
    method_builder.add("hint_reduction", enum_node(to_string(method.hint_reduction)));
  if (keys == NodeKeys::All || method.aux != method_defaults.aux) {
    const AuxWidthConfig& width = method.aux.width;
    method_builder.add("aux", MappingBuilder()
                                  .add("width", width.rule == AuxWidthRule::Fixed
                                                    ? integer_node(width.channels)
                                                    : enum_node(to_string(width.rule)))
                                  .build());
  }
  Node method_node = method_builder.add("meta", std::move(meta_node)).build();

  const OptimConfig& optim = config.optim;
  Node milestones;
  milestones.kind = Kind::Sequence;
  for (int milestone : optim.schedule.milestones)
    milestones.children.push_back(integer_node(milestone));
  Node schedule_node = MappingBuilder()
                           .add("name", enum_node(to_string(optim.schedule.name)))
                           .add("milestones", std::move(milestones))
                           .add("gamma", number_node(optim.schedule.gamma))
                           .add("warmup_epochs", integer_node(optim.schedule.warmup_epochs))
                           .build();
  Node optim_node = MappingBuilder()
                        .add("epochs", integer_node(optim.epochs))
                        .add("batch_size", integer_node(optim.batch_size))
                        .add("lr", number_node(optim.lr))
                        .add("momentum", number_node(optim.momentum))
                        .add("nesterov", bool_node(optim.nesterov))
                        .add("weight_decay", number_node(optim.weight_decay))
                        .add("label_smoothing", number_node(optim.label_smoothing))
                        .add("schedule", std::move(schedule_node))
                        .build();

  const AugmentConfig& augment = config.augment;
  Node augment_node = MappingBuilder()
                          .add("random_crop", integer_node(augment.random_crop))
                          .add("flip", bool_node(augment.flip))
                          .add("cutout", integer_node(augment.cutout))
                          .build();

  const RuntimeConfig& runtime = config.runtime;
  MappingBuilder runtime_builder;
  runtime_builder.add("device", string_node(runtime.device));
  if (keys == NodeKeys::All) {
    runtime_builder.add("data_on_device", enum_node(to_string(runtime.data_on_device)))
        .add("cuda_graph", bool_node(runtime.cuda_graph));
  }
  Node runtime_node =
      runtime_builder.add("precision", enum_node(to_string(runtime.precision)))
          .add("threads", integer_node(runtime.threads))
          .add("seed", integer_node(runtime.seed))
          .add("deterministic", bool_node(runtime.deterministic))
          .add("ranks_per_trial", integer_node(runtime.ranks_per_trial))
          .add("log_every", integer_node(runtime.log_every))
          .add("checkpoint_every_epochs", integer_node(runtime.checkpoint_every_epochs))
          .add("max_train_batches", integer_node(runtime.max_train_batches))
          .add("max_eval_batches", integer_node(runtime.max_eval_batches))
          .build();

  return MappingBuilder()
      .add("dataset", dataset_node.build())
      .add("model", std::move(model_node))
      .add("method", std::move(method_node))
      .add("optim", std::move(optim_node))
      .add("augment", std::move(augment_node))
      .add("runtime", std::move(runtime_node))
      .build();
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

// ---- enum names

std::string_view to_string(DatasetName value) {
  return enum_to_string(kDatasetNames, value);
}
std::string_view to_string(MethodName value) {
  return enum_to_string(kMethodNames, value);
}
std::string_view to_string(MetaData value) {
  return enum_to_string(kMetaData, value);
}
std::string_view to_string(GeneratorResolution value) {
  return enum_to_string(kGeneratorResolutions, value);
}
std::string_view to_string(MetaDifference value) {
  return enum_to_string(kMetaDifferences, value);
}
std::string_view to_string(MetaUpdateOrder value) {
  return enum_to_string(kMetaUpdateOrders, value);
}
std::string_view to_string(DeepestCe value) {
  return enum_to_string(kDeepestCe, value);
}
std::string_view to_string(HintReduction value) {
  return enum_to_string(kHintReductions, value);
}
std::string_view to_string(AuxWidthRule value) {
  if (value == AuxWidthRule::Fixed) return "N";
  return enum_to_string(kAuxWidthRules, value);
}
std::string_view to_string(MetaOptimizer value) {
  return enum_to_string(kMetaOptimizers, value);
}
std::string_view to_string(ScheduleName value) {
  return enum_to_string(kScheduleNames, value);
}
std::string_view to_string(Precision value) {
  return enum_to_string(kPrecisions, value);
}
std::string_view to_string(DataOnDevice value) {
  return enum_to_string(kDataOnDevice, value);
}

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
  const Context context{source};
  if (impl.node.kind != Kind::Mapping && impl.node.kind != Kind::Null) {
    fail(context, impl.path, &impl.node,
         detail::concat("expected a mapping of config sections, got ", describe(impl.node)));
  }
  const Section top(context, &impl.node, impl.path, kTopKeys);
  const auto section = [&](std::string_view key, const std::vector<std::string_view>& keys) {
    return Section(context, top.get(key), top.path_of(key), keys);
  };
  TrialConfig config;
  config.dataset = read_dataset(section("dataset", kDatasetKeys));
  config.model = read_model(section("model", kModelKeys));
  config.method = read_method(section("method", kMethodKeys));
  config.optim = read_optim(section("optim", kOptimKeys));
  config.augment = read_augment(section("augment", kAugmentKeys));
  config.runtime = read_runtime(section("runtime", kRuntimeKeys));
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
  TrialConfig identity = config;
  const RuntimeConfig defaults;
  identity.runtime.device = defaults.device;
  identity.runtime.threads = defaults.threads;
  identity.runtime.log_every = defaults.log_every;
  identity.runtime.checkpoint_every_epochs = defaults.checkpoint_every_epochs;
  identity.dataset.local_copy = DatasetConfig{}.local_copy;
  return hex16(fnv1a64(emit_document(to_node(identity, NodeKeys::Identity))));
}

}  // namespace md::io
