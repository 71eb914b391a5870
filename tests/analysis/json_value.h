// A strict little JSON reader for the report tests: the report's JSON must parse as JSON (not
// merely contain the right substrings), and the tests then look numbers up by path. Throws
// std::runtime_error with the offset on any syntax error, including trailing text. Test-only: no
// \u escapes beyond ASCII are decoded (the report writes only ASCII escapes).
#pragma once

#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace md::test {

struct JsonValue {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0.0;
  std::string text;
  std::vector<JsonValue> items;
  std::map<std::string, JsonValue> members;

  const JsonValue& operator[](const std::string& key) const {
    if (kind != Kind::Object) throw std::runtime_error("not an object, looking up " + key);
    auto found = members.find(key);
    if (found == members.end()) throw std::runtime_error("no member " + key);
    return found->second;
  }
  const JsonValue& operator[](std::size_t index) const {
    if (kind != Kind::Array || index >= items.size()) throw std::runtime_error("bad array index");
    return items[index];
  }
  bool is_null() const { return kind == Kind::Null; }
};

class JsonParser {
 public:
  static JsonValue parse(const std::string& text) {
    JsonParser parser(text);
    JsonValue value = parser.value();
    parser.skip_space();
    if (parser.position_ != text.size()) parser.fail("trailing text");
    return value;
  }

 private:
  explicit JsonParser(const std::string& text) : text_(text) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("JSON: " + what + " at offset " + std::to_string(position_));
  }
  void skip_space() {
    while (position_ < text_.size() && (text_[position_] == ' ' || text_[position_] == '\n' ||
                                        text_[position_] == '\t' || text_[position_] == '\r')) {
      ++position_;
    }
  }
  char peek() {
    skip_space();
    if (position_ >= text_.size()) fail("unexpected end");
    return text_[position_];
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++position_;
  }
  bool consume_word(const std::string& word) {
    if (text_.compare(position_, word.size(), word) != 0) return false;
    position_ += word.size();
    return true;
  }

  std::string string_literal() {
    expect('"');
    std::string out;
    while (true) {
      if (position_ >= text_.size()) fail("unterminated string");
      char c = text_[position_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (position_ >= text_.size()) fail("unterminated escape");
      char escape = text_[position_++];
      switch (escape) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'u': {
          if (position_ + 4 > text_.size()) fail("short \\u escape");
          long code = std::strtol(text_.substr(position_, 4).c_str(), nullptr, 16);
          if (code >= 0x80) fail("non-ASCII \\u escape");
          out += static_cast<char>(code);
          position_ += 4;
          break;
        }
        default:
          fail("bad escape");
      }
    }
  }

  JsonValue value() {
    JsonValue result;
    char c = peek();
    if (c == '{') {
      result.kind = JsonValue::Kind::Object;
      ++position_;
      if (peek() == '}') {
        ++position_;
        return result;
      }
      while (true) {
        std::string key = string_literal();
        expect(':');
        if (result.members.count(key) != 0) fail("duplicate key " + key);
        result.members[key] = value();
        if (peek() == ',') {
          ++position_;
          continue;
        }
        expect('}');
        return result;
      }
    }
    if (c == '[') {
      result.kind = JsonValue::Kind::Array;
      ++position_;
      if (peek() == ']') {
        ++position_;
        return result;
      }
      while (true) {
        result.items.push_back(value());
        if (peek() == ',') {
          ++position_;
          continue;
        }
        expect(']');
        return result;
      }
    }
    if (c == '"') {
      result.kind = JsonValue::Kind::String;
      result.text = string_literal();
      return result;
    }
    if (consume_word("null")) return result;
    if (consume_word("true") || consume_word("false")) {
      result.kind = JsonValue::Kind::Bool;
      result.boolean = text_[position_ - 1] == 'e' && text_[position_ - 2] == 'u';
      return result;
    }
    const char* start = text_.c_str() + position_;
    char* end = nullptr;
    result.number = std::strtod(start, &end);
    if (end == start || !(c == '-' || (c >= '0' && c <= '9'))) fail("expected a value");
    result.kind = JsonValue::Kind::Number;
    position_ += static_cast<std::size_t>(end - start);
    return result;
  }

  const std::string& text_;
  std::size_t position_ = 0;
};

}  // namespace md::test
