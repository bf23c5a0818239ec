// JSON and float32 vectors, both ways.
//
// Writing: each value as the shortest decimal that reads back as the same float32
// (std::to_chars), the way TEI's serde/ryu writes f32. About half the digits of a double's
// shortest form (what JSON.stringify writes for a float32 widened to a number), and each value
// still round-trips exactly through Math.fround / numpy.float32.
//
// Reading (`VectorExtractor`): an upsert body's `documents[i].vector` arrays parsed here, so
// JSON.parse reads the rest of the body without them.
#pragma once

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace akidb {

/** The longest value to_chars writes for a float32: "-1.17549435e-38" is 15 characters. */
constexpr size_t kFloat32JsonChars = 16;

/** `[v0,v1,...]`; a NaN or an infinity has no JSON form and is an error. */
inline std::string float32_json(const float* values, size_t count) {
  std::string out(count * (kFloat32JsonChars + 1) + 2, '\0');
  char* cursor = out.data();
  *cursor++ = '[';
  for (size_t i = 0; i < count; i++) {
    if (!std::isfinite(values[i]))
      throw std::invalid_argument("value " + std::to_string(i) + " is not finite; JSON has no form for it");
    if (i > 0) *cursor++ = ',';
    cursor = std::to_chars(cursor, cursor + kFloat32JsonChars, values[i]).ptr;
  }
  *cursor++ = ']';
  out.resize(static_cast<size_t>(cursor - out.data()));
  return out;
}

/** What a `VectorExtractor` took out of a body. */
struct ExtractedVectors {
  /** The body with each extracted array replaced by ` 0 `. */
  std::string text;
  /** The index in `documents` of each extracted vector, in body order. */
  std::vector<uint32_t> documents;
  /** Their values, `dimension` per document, as float(double value): what JSON.parse then a Float32Array give. */
  std::vector<float> values;
};

/**
 * Takes the vectors out of an upsert body (`{"documents": [{"vector": [...], ...}, ...], ...}`)
 * so JSON.parse reads the rest without them: at 1024 dimensions JSON.parse spent ~70 us per
 * document on the numbers and made a heap number of each. An array is taken only when it sits at
 * `documents[i].vector` and holds exactly `dimension` JSON numbers (the JSON grammar, checked
 * here), each within double's range; any other array is left as it is, for JSON.parse and the
 * request's checks to handle (and name) as before. Each taken array becomes ` 0 `, a value in the
 * same place, so the text stays valid JSON exactly when the body was.
 * Returns false (take nothing) for bodies whose meaning this scan could misread: a key written
 * with escapes, `documents` twice, `vector` twice in one document, or anything but an object.
 */
class VectorExtractor {
 public:
  VectorExtractor(std::string_view body, size_t dimension) : s_(body), dimension_(dimension) {}

  bool run(ExtractedVectors& out) {
    out = {};
    out_ = &out;
    ws();
    if (!eat('{')) return false;
    bool seen_documents = false;
    if (!members([&](std::string_view key) {
          if (key != "documents") return skip_value();
          if (seen_documents) return false;
          seen_documents = true;
          return peek() == '[' ? documents() : skip_value();
        }))
      return false;
    ws();
    if (at_ != s_.size()) return false;
    if (out.documents.empty()) return true;
    std::string text;
    text.reserve(s_.size());
    size_t from = 0;
    for (const auto& [start, end] : spans_) {
      text.append(s_.substr(from, start - from));
      text.append(" 0 ");
      from = end;
    }
    text.append(s_.substr(from));
    out.text = std::move(text);
    return true;
  }

 private:
  std::string_view s_;
  size_t dimension_;
  size_t at_ = 0;
  ExtractedVectors* out_ = nullptr;
  std::vector<std::pair<size_t, size_t>> spans_;

  char peek() const { return at_ < s_.size() ? s_[at_] : '\0'; }
  void ws() {
    while (at_ < s_.size() && (s_[at_] == ' ' || s_[at_] == '\t' || s_[at_] == '\n' || s_[at_] == '\r')) at_++;
  }
  bool eat(char c) {
    if (peek() != c) return false;
    at_++;
    return true;
  }

  /** A string's raw bytes between its quotes, or false; `escaped` says whether it held a backslash. */
  bool string(std::string_view& raw, bool& escaped) {
    if (!eat('"')) return false;
    const size_t start = at_;
    escaped = false;
    while (at_ < s_.size()) {
      const char c = s_[at_];
      if (c == '"') {
        raw = s_.substr(start, at_ - start);
        at_++;
        return true;
      }
      if (c == '\\') {
        escaped = true;
        at_ += 2;
      } else {
        at_++;
      }
    }
    return false;
  }

  /** An object's members from its `{`: `on_value(key)` reads each value. */
  template <typename OnValue>
  bool members(OnValue on_value) {
    ws();
    if (eat('}')) return true;
    for (;;) {
      ws();
      std::string_view key;
      bool escaped;
      if (!string(key, escaped) || escaped) return false;
      ws();
      if (!eat(':')) return false;
      ws();
      if (!on_value(key)) return false;
      ws();
      if (eat('}')) return true;
      if (!eat(',')) return false;
    }
  }

  bool documents() {
    eat('[');
    ws();
    if (eat(']')) return true;
    for (uint32_t i = 0;; i++) {
      ws();
      if (peek() == '{' ? !document(i) : !skip_value()) return false;
      ws();
      if (eat(']')) return true;
      if (!eat(',')) return false;
    }
  }

  bool document(uint32_t index) {
    eat('{');
    bool seen_vector = false;
    return members([&](std::string_view key) {
      if (key != "vector") return skip_value();
      if (seen_vector) return false;
      seen_vector = true;
      if (peek() != '[') return skip_value();
      const size_t start = at_;
      const size_t had = out_->values.size();
      if (numbers()) {
        spans_.emplace_back(start, at_);
        out_->documents.push_back(index);
        return true;
      }
      out_->values.resize(had);
      at_ = start;
      return skip_value();
    });
  }

  /** `[n, ...]` of exactly `dimension` JSON numbers, appended to `values`; false leaves it for JSON.parse. */
  bool numbers() {
    eat('[');
    for (size_t count = 0;; count++) {
      ws();
      double value;
      if (count == dimension_ || !number(value)) return false;
      out_->values.push_back(static_cast<float>(value));
      ws();
      if (eat(']')) return count + 1 == dimension_;
      if (!eat(',')) return false;
    }
  }

  /**
   * One number by the JSON grammar (`-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`), read as the
   * nearest double (from_chars, as JSON.parse). False past double's range either way (JSON.parse
   * gives Infinity or 0 there): those arrays go to JSON.parse, whose checks handle them.
   */
  bool number(double& value) {
    const size_t start = at_;
    auto digits = [&] {
      const size_t from = at_;
      while (at_ < s_.size() && s_[at_] >= '0' && s_[at_] <= '9') at_++;
      return at_ > from;
    };
    eat('-');
    if (eat('0')) {
      if (peek() >= '0' && peek() <= '9') return false;
    } else if (!digits()) {
      return false;
    }
    if (eat('.') && !digits()) return false;
    if (peek() == 'e' || peek() == 'E') {
      at_++;
      if (!eat('+')) eat('-');
      if (!digits()) return false;
    }
    const char* first = s_.data() + start;
    const char* last = s_.data() + at_;
    const auto [end, error] = std::from_chars(first, last, value);
    return error == std::errc() && end == last;
  }

  /** Steps over one value (any JSON, not checked: JSON.parse checks the text), or false at the end. */
  bool skip_value() {
    const char c = peek();
    if (c == '"') {
      std::string_view raw;
      bool escaped;
      return string(raw, escaped);
    }
    if (c == '{' || c == '[') {
      size_t depth = 0;
      while (at_ < s_.size()) {
        const char d = s_[at_];
        if (d == '"') {
          std::string_view raw;
          bool escaped;
          if (!string(raw, escaped)) return false;
          continue;
        }
        at_++;
        if (d == '{' || d == '[') depth++;
        if ((d == '}' || d == ']') && --depth == 0) return true;
      }
      return false;
    }
    const size_t start = at_;
    while (at_ < s_.size() && std::strchr(",]} \t\n\r", s_[at_]) == nullptr) at_++;
    return at_ > start;
  }
};

}  // namespace akidb
