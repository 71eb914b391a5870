#include "text_format.h"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace md::analysis {

bool parse_number(const std::string& text, double& value) {
  if (text.empty()) return false;
  const char* end = text.data() + text.size();
  auto [pointer, error] = std::from_chars(text.data(), end, value);
  return error == std::errc() && pointer == end;
}

bool natural_less(const std::string& a, const std::string& b) {
  double number_a = 0.0;
  double number_b = 0.0;
  const bool a_is_number = parse_number(a, number_a);
  const bool b_is_number = parse_number(b, number_b);
  if (a_is_number && b_is_number && number_a != number_b) return number_a < number_b;
  if (a_is_number != b_is_number) return a_is_number;
  return a < b;
}

std::string printf_text(const char* format, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, value);
  return buffer;
}

std::string exact_number(double value) {
  if (std::isnan(value)) return {};
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buffer[64];
  auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, value);
  MD_CHECK(error == std::errc(), "to_chars failed");
  return std::string(buffer, end);
}

std::string markdown_cell(const std::string& text) {
  std::string cell;
  for (char c : text) {
    if (c == '|') {
      cell += "\\|";
    } else if (c == '\n') {
      cell += ' ';
    } else {
      cell += c;
    }
  }
  return cell.empty() ? std::string(kDash) : cell;
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

std::string json_string(const std::string& text) {
  std::string quoted = "\"";
  for (char c : text) {
    switch (c) {
      case '"':
        quoted += "\\\"";
        break;
      case '\\':
        quoted += "\\\\";
        break;
      case '\n':
        quoted += "\\n";
        break;
      case '\r':
        quoted += "\\r";
        break;
      case '\t':
        quoted += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buffer[8];
          std::snprintf(buffer, sizeof buffer, "\\u%04x", static_cast<unsigned>(c));
          quoted += buffer;
        } else {
          quoted += c;
        }
    }
  }
  return quoted + "\"";
}

std::string json_string_list(const std::vector<std::string>& values) {
  std::string text = "[";
  for (std::size_t i = 0; i < values.size(); ++i) {
    text += (i == 0 ? "" : ", ") + json_string(values[i]);
  }
  return text + "]";
}

std::string json_number(double value) {
  if (!std::isfinite(value)) return "null";
  return exact_number(value);
}

}  // namespace md::analysis
