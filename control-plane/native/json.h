// JSON and float32 vectors, both ways.
//
// Writing: each value as the shortest decimal that reads back as the same float32
// (std::to_chars), the way TEI's serde/ryu writes f32. About half the digits of a double's
// shortest form (what JSON.stringify writes for a float32 widened to a number), and each value
// still round-trips exactly through Math.fround / numpy.float32.
//
// Reading (`VectorExtractor`): a body's vectors (an upsert's `documents[i].vector`, a batch
// search's `queries[i].vector`, a search's own `vector`) parsed here, so JSON.parse reads the rest
// of the body without them; each number as float(nearest double), with `float_of_decimal`'s fast
// paths and std::from_chars for what they leave.
#pragma once

#include <algorithm>
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

/**
 * 10^k for k in [kPow10Min, kPow10Max] as a 64-bit mantissa with its top bit set and a binary
 * exponent: 10^k lies in [mantissa, mantissa + 1) * 2^exponent (the mantissa is truncated).
 * Computed at compile time from exact big integers: 10^k itself for k >= 0, 2^320 / 10^-k for k < 0.
 */
struct Pow10 {
  uint64_t mantissa;
  int exponent;
};
constexpr int kPow10Min = -64;
constexpr int kPow10Max = 40;
struct Pow10Table {
  Pow10 at[kPow10Max - kPow10Min + 1];
};

/** A little-endian big integer of 12 32-bit limbs, enough for 2^320 and 10^40. */
struct BigInt {
  uint32_t limb[12];
};

constexpr void big_times_10(BigInt& x) {
  uint64_t carry = 0;
  for (uint32_t& limb : x.limb) {
    const uint64_t v = static_cast<uint64_t>(limb) * 10 + carry;
    limb = static_cast<uint32_t>(v);
    carry = v >> 32;
  }
}

constexpr void big_over_10(BigInt& x) {
  uint64_t rest = 0;
  for (int i = 11; i >= 0; i--) {
    const uint64_t v = (rest << 32) | x.limb[i];
    x.limb[i] = static_cast<uint32_t>(v / 10);
    rest = v % 10;
  }
}

/** The top 64 bits of x (x > 0), and the power of two they are scaled by: x in [m, m + 1) * 2^exponent. */
constexpr Pow10 big_top64(const BigInt& x) {
  int bits = 12 * 32;
  while (((x.limb[(bits - 1) / 32] >> ((bits - 1) % 32)) & 1) == 0) bits--;
  uint64_t mantissa = 0;
  for (int i = bits - 1; i >= bits - 64; i--) {
    const uint64_t bit = i >= 0 ? (x.limb[i / 32] >> (i % 32)) & 1 : 0;
    mantissa = (mantissa << 1) | bit;
  }
  return {mantissa, bits - 64};
}

constexpr Pow10Table make_pow10_table() {
  Pow10Table table{};
  BigInt power{};
  power.limb[0] = 1;
  for (int k = 0; k <= kPow10Max; k++) {
    table.at[k - kPow10Min] = big_top64(power);
    big_times_10(power);
  }
  BigInt inverse{};
  inverse.limb[10] = 1;  // 2^320
  for (int k = -1; k >= kPow10Min; k--) {
    big_over_10(inverse);  // floor(floor(x / 10^j) / 10) = floor(x / 10^(j+1))
    const Pow10 top = big_top64(inverse);
    table.at[k - kPow10Min] = {top.mantissa, top.exponent - 320};
  }
  return table;
}

constexpr Pow10Table kPow10 = make_pow10_table();

/**
 * float(nearest double to (-1)^negative * m * 10^e10), what JSON.parse then Math.fround give, for
 * the cases settled without a full decimal conversion; false for the rest (for std::from_chars).
 *  * m <= 2^53 and |e10| <= 22 (Clinger's fast path): m and 10^|e10| are exact doubles, so one
 *    multiplication or division rounds once to the nearest double. Every float32 written in its
 *    shortest digits (at most 9) is read here.
 *  * Otherwise (doubles' 17 digits): m * 10^e10 to 64 bits from one 64 x 64-bit product with the
 *    table's truncated power, which is short of the value by less than 3 units of its last bit.
 *    Its top 24 bits and the rounding bit give the float unless the 40 bits below the top 24 lie
 *    within 2^12 of the halfway point: there rounding to a double first (53 bits, 2^11 units of
 *    these 40) could tie, or the error could cross it. That is ~1 value in 2^27; those, and
 *    results outside float's normal range, go to from_chars.
 */
inline bool float_of_decimal(bool negative, uint64_t m, int e10, float& out) {
  if (m == 0) {
    out = negative ? -0.0f : 0.0f;
    return true;
  }
  if (m <= (uint64_t{1} << 53) && e10 >= -22 && e10 <= 22) {
    constexpr double kExact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    const double d = e10 < 0 ? static_cast<double>(m) / kExact[-e10] : static_cast<double>(m) * kExact[e10];
    out = static_cast<float>(negative ? -d : d);
    return true;
  }
  if (e10 < kPow10Min || e10 > kPow10Max) return false;
  const Pow10 power = kPow10.at[e10 - kPow10Min];
  const int shift = __builtin_clzll(m);
  const unsigned __int128 product = static_cast<unsigned __int128>(m << shift) * power.mantissa;
  const bool top = (product >> 127) != 0;
  const uint64_t high = static_cast<uint64_t>(top ? product >> 64 : product >> 63);
  int exponent = power.exponent - shift + (top ? 64 : 63);  // the value is (high + [0, 3)) * 2^exponent
  constexpr uint64_t kHalf = uint64_t{1} << 39;
  const uint64_t rest = high & ((uint64_t{1} << 40) - 1);
  if (rest + (uint64_t{1} << 12) >= kHalf && rest <= kHalf + (uint64_t{1} << 12)) return false;
  uint64_t mantissa = (high >> 40) + (rest > kHalf ? 1 : 0);
  exponent += 40;
  if (mantissa == (uint64_t{1} << 24)) {
    mantissa >>= 1;
    exponent++;
  }
  const int biased = exponent + 23 + 127;
  if (biased < 1 || biased > 254) return false;
  const uint32_t bits = (negative ? 0x80000000u : 0u) | (static_cast<uint32_t>(biased) << 23) |
                        (static_cast<uint32_t>(mantissa) & 0x7fffffu);
  std::memcpy(&out, &bits, 4);
  return true;
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
 * Takes the vectors out of a body so JSON.parse reads the rest without them: at 1024 dimensions
 * JSON.parse spent ~70 us per vector on the numbers and made a heap number of each. With a `list`
 * key (`{"documents": [{"vector": [...], ...}, ...], ...}`) an array is taken only when it sits
 * at `list[i].vector`; without one, only the body's own `vector` (reported as index 0). It must
 * hold exactly `dimension` JSON numbers (the JSON grammar, checked here), each within double's
 * range; any other array is left as it is, for JSON.parse and the request's checks to handle (and
 * name) as before. Each taken array becomes ` 0 `, a value in the same place, so the text stays
 * valid JSON exactly when the body was.
 * Returns false (take nothing) for bodies whose meaning this scan could misread: a key written
 * with escapes, the list twice, `vector` twice in one object, or anything but an object.
 */
class VectorExtractor {
 public:
  VectorExtractor(std::string_view body, size_t dimension, std::string_view list)
      : s_(body), dimension_(dimension), list_(list) {}

  bool run(ExtractedVectors& out) {
    out = {};
    out_ = &out;
    ws();
    if (peek() != '{') return false;
    if (list_.empty()) {
      if (!document(0)) return false;
    } else {
      eat('{');
      bool seen_list = false;
      if (!members([&](std::string_view key) {
            if (key != list_) return skip_value();
            if (seen_list) return false;
            seen_list = true;
            return peek() == '[' ? documents() : skip_value();
          }))
        return false;
    }
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
  std::string_view list_;
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
      float value;
      if (count == dimension_ || !number(value)) return false;
      out_->values.push_back(value);
      ws();
      if (eat(']')) return count + 1 == dimension_;
      if (!eat(',')) return false;
    }
  }

  /**
   * One number by the JSON grammar (`-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`), as
   * float(nearest double) (JSON.parse then Math.fround). Its digits are gathered as they are
   * checked, for `float_of_decimal`; numbers it leaves, and those of over 19 significant digits,
   * are read by from_chars. False past double's range either way (JSON.parse gives Infinity or 0
   * there): those arrays go to JSON.parse, whose checks handle them.
   */
  bool number(float& value) {
    const size_t start = at_;
    const bool negative = eat('-');
    const size_t whole = at_;
    if (eat('0')) {
      if (is_digit(peek())) return false;
    } else if (!digits()) {
      return false;
    }
    const size_t point = at_;
    size_t fraction = at_;
    if (eat('.')) {
      fraction = at_;
      if (!digits()) return false;
    }
    const size_t end = at_;
    int e10 = -static_cast<int>(end - fraction);
    if (peek() == 'e' || peek() == 'E') {
      at_++;
      const bool below = eat('-');
      if (!below) eat('+');
      int exponent = 0;
      const size_t from = at_;
      for (; is_digit(peek()); at_++) exponent = std::min(exponent * 10 + (s_[at_] - '0'), 100000);
      if (at_ == from) return false;
      e10 += below ? -exponent : exponent;
    }
    // The significant digits: the integer part's unless it is 0, then the fraction's less its
    // leading zeros when the integer part is 0.
    const char* text = s_.data();
    const bool zero = text[whole] == '0';
    size_t first = fraction;
    if (zero)
      while (first < end && text[first] == '0') first++;
    const size_t integer_digits = zero ? 0 : point - whole;
    if (integer_digits + (end - first) <= 19) {
      uint64_t m = 0;
      accumulate(m, text + whole, integer_digits);
      accumulate(m, text + first, end - first);
      if (float_of_decimal(negative, m, e10, value)) return true;
    }
    double exact;
    const auto [stop, error] = std::from_chars(text + start, text + at_, exact);
    value = static_cast<float>(exact);
    return error == std::errc() && stop == text + at_;
  }

  static bool is_digit(char c) { return c >= '0' && c <= '9'; }
  /** Steps over a run of digits, eight at a time where it can; false if there is none. */
  bool digits() {
    const size_t from = at_;
    while (at_ + 8 <= s_.size() && eight_digits(s_.data() + at_)) at_ += 8;
    while (is_digit(peek())) at_++;
    return at_ > from;
  }
  static uint64_t load8(const char* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;  // little-endian: byte 0 lowest (x86-64 and arm64 alike)
  }
  static bool eight_digits(const char* p) {
    const uint64_t v = load8(p);
    return (((v + 0x4646464646464646) | (v - 0x3030303030303030)) & 0x8080808080808080) == 0;
  }
  /** m * 10^count + the `count` digits at p (m stays below 10^19: at most 19 digits in all). */
  static void accumulate(uint64_t& m, const char* p, size_t count) {
    for (; count >= 8; p += 8, count -= 8) {
      // Eight ASCII digits to their value in three multiplications (as simdjson and fast_float do).
      uint64_t v = load8(p) - 0x3030303030303030;
      v = (v * 10) + (v >> 8);
      v = (((v & 0x000000FF000000FF) * (100 + (1000000ULL << 32))) +
           (((v >> 16) & 0x000000FF000000FF) * (1 + (10000ULL << 32)))) >>
          32;
      m = m * 100000000 + v;
    }
    for (; count > 0; p++, count--) m = m * 10 + static_cast<uint64_t>(*p - '0');
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
