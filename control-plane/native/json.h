// JSON text for float32 vectors: each value as the shortest decimal that reads back as the same
// float32 (std::to_chars), the way TEI's serde/ryu writes f32. About half the digits of a double's
// shortest form (what JSON.stringify writes for a float32 widened to a number), and each value
// still round-trips exactly through Math.fround / numpy.float32.
#pragma once

#include <charconv>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>

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

}  // namespace akidb
