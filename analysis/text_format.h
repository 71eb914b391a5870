// Text helpers shared by the report's tables and the comparison's: number parsing and natural
// ordering of config values, and the escaping rules of Markdown cells, CSV fields and JSON.
#pragma once

#include <string>
#include <vector>

namespace md::analysis {

// U+2013, the mark of a missing value in the report's tables.
inline constexpr const char* kDash = "\xe2\x80\x93";

// The whole of `text` as a number (std::from_chars); false for anything else.
bool parse_number(const std::string& text, double& value);
// Numbers numerically (and before text), text lexicographically: how groups are sorted.
bool natural_less(const std::string& a, const std::string& b);
// `value` through a printf format, e.g. "%.2f".
std::string printf_text(const char* format, double value);
// Shortest text that reads back as exactly `value`; "" for NaN.
std::string exact_number(double value);

// A Markdown table cell: '|' escaped, newlines as spaces, kDash when empty.
std::string markdown_cell(const std::string& text);
// A CSV field, quoted when it holds a comma, quote or line break.
std::string csv_field(const std::string& text);
// A JSON string literal.
std::string json_string(const std::string& text);
// A JSON array of strings.
std::string json_string_list(const std::vector<std::string>& values);
// A JSON number; null for NaN and infinities (not JSON numbers).
std::string json_number(double value);

}  // namespace md::analysis
