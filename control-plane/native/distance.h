// Distance kernels of the HNSW index: f32, f16 and i8 vectors, dot-product and squared-L2 forms.
// Smaller is closer for every kernel. The portable loops keep 16 partial sums so the compiler
// vectorises them without reassociating (NEON on arm64, SSE2 on the x86-64 baseline); on x86-64
// AVX2+FMA+F16C and AVX-512 variants are picked at run time from the CPU's features, so one binary
// runs on any x86-64 and uses what the CPU has.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#define AKIDB_X86 1
#include <immintrin.h>
#endif

namespace akidb {

using DistanceFn = float (*)(const void* a, const void* b, size_t dim);

// i8 vectors hold round(x * 127) of unit-scale components, clamped to [-127, 127].
constexpr float kI8Scale = 127.0f;

inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1fu) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {
    // Subnormal half: normalise the mantissa.
    exp = 113;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      exp--;
    }
    bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

/** Round to nearest even, overflow to infinity, NaN kept NaN. */
inline uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) return sign | (abs > 0x7f800000u ? 0x7e00u : 0x7c00u);
  if (abs >= 0x477ff000u) return sign | 0x7c00u;  // rounds past 65504
  if (abs < 0x38800000u) {
    // Subnormal half (or zero): shift the mantissa with the implicit bit, rounding to even.
    if (abs < 0x33000000u) return sign;
    const uint32_t e = abs >> 23;
    const uint32_t m = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) r++;
    return sign | static_cast<uint16_t>(r);
  }
  uint32_t r = ((abs >> 13) - (112u << 10));
  const uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r++;
  return sign | static_cast<uint16_t>(r);
}

inline int8_t float_to_i8(float f) {
  const float scaled = std::nearbyint(f * kI8Scale);
  if (!(scaled > -kI8Scale)) return -127;  // NaN lands here too
  if (scaled > kI8Scale) return 127;
  return static_cast<int8_t>(scaled);
}

// ---- portable loops -------------------------------------------------------------------------

inline float dot_f32_portable(const float* x, const float* y, size_t n) {
  float acc[16] = {0};
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; j++) acc[j] += x[i + j] * y[i + j];
  float s = 0;
  for (float a : acc) s += a;
  for (; i < n; i++) s += x[i] * y[i];
  return s;
}

inline float l2_f32_portable(const float* x, const float* y, size_t n) {
  float acc[16] = {0};
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; j++) {
      const float d = x[i + j] - y[i + j];
      acc[j] += d * d;
    }
  float s = 0;
  for (float a : acc) s += a;
  for (; i < n; i++) s += (x[i] - y[i]) * (x[i] - y[i]);
  return s;
}

#if defined(__aarch64__) && defined(__ARM_FP16_FORMAT_IEEE)
// arm64 converts halves natively (__fp16), so the compiler vectorises these loops to NEON fcvtl.
inline float half_at(const uint16_t* p, size_t i) {
  __fp16 h;
  std::memcpy(&h, p + i, 2);
  return static_cast<float>(h);
}
#else
inline float half_at(const uint16_t* p, size_t i) { return half_to_float(p[i]); }
#endif

inline float dot_f16_portable(const uint16_t* x, const uint16_t* y, size_t n) {
  float acc[8] = {0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) acc[j] += half_at(x, i + j) * half_at(y, i + j);
  float s = 0;
  for (float a : acc) s += a;
  for (; i < n; i++) s += half_at(x, i) * half_at(y, i);
  return s;
}

inline float l2_f16_portable(const uint16_t* x, const uint16_t* y, size_t n) {
  float acc[8] = {0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) {
      const float d = half_at(x, i + j) - half_at(y, i + j);
      acc[j] += d * d;
    }
  float s = 0;
  for (float a : acc) s += a;
  for (; i < n; i++) s += (half_at(x, i) - half_at(y, i)) * (half_at(x, i) - half_at(y, i));
  return s;
}

struct I8Sums {
  int32_t dot, xx, yy, sq;
};

inline I8Sums sums_i8_portable(const int8_t* x, const int8_t* y, size_t n) {
  int32_t dot = 0, xx = 0, yy = 0, sq = 0;
  for (size_t i = 0; i < n; i++) {
    const int32_t a = x[i], b = y[i];
    dot += a * b;
    xx += a * a;
    yy += b * b;
    sq += (a - b) * (a - b);
  }
  return {dot, xx, yy, sq};
}

/** The integer dot product of two int8 arrays (`ip_i8`, and the codes of Hnsw's sketches). */
inline int32_t dot_i8_portable(const int8_t* x, const int8_t* y, size_t n) {
  int32_t acc[16] = {0};
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; j++) acc[j] += static_cast<int32_t>(x[i + j]) * y[i + j];
  int32_t s = 0;
  for (int32_t a : acc) s += a;
  for (; i < n; i++) s += static_cast<int32_t>(x[i]) * y[i];
  return s;
}

// ---- x86-64 variants ------------------------------------------------------------------------

#ifdef AKIDB_X86
// GCC 12's own AVX-512 headers trip -Wuninitialized inside target-attributed functions (their
// `_mm512_undefined_*` idiom), a false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
__attribute__((target("avx2,fma"))) inline float hsum256(__m256 v) {
  const __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  __m128 s = _mm_add_ps(lo, hi);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) inline float dot_f32_avx2(const float* x, const float* y, size_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
  }
  for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
  float s = hsum256(_mm256_add_ps(a0, a1));
  for (; i < n; i++) s += x[i] * y[i];
  return s;
}

__attribute__((target("avx2,fma"))) inline float l2_f32_avx2(const float* x, const float* y, size_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i));
    const __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8));
    a0 = _mm256_fmadd_ps(d0, d0, a0);
    a1 = _mm256_fmadd_ps(d1, d1, a1);
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i));
    a0 = _mm256_fmadd_ps(d, d, a0);
  }
  float s = hsum256(_mm256_add_ps(a0, a1));
  for (; i < n; i++) s += (x[i] - y[i]) * (x[i] - y[i]);
  return s;
}

__attribute__((target("avx2,fma,f16c"))) inline __m256 load_half8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

__attribute__((target("avx2,fma,f16c"))) inline float dot_f16_avx2(const uint16_t* x, const uint16_t* y, size_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_fmadd_ps(load_half8(x + i), load_half8(y + i), a0);
    a1 = _mm256_fmadd_ps(load_half8(x + i + 8), load_half8(y + i + 8), a1);
  }
  for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(load_half8(x + i), load_half8(y + i), a0);
  float s = hsum256(_mm256_add_ps(a0, a1));
  for (; i < n; i++) s += half_to_float(x[i]) * half_to_float(y[i]);
  return s;
}

__attribute__((target("avx2,fma,f16c"))) inline float l2_f16_avx2(const uint16_t* x, const uint16_t* y, size_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 d0 = _mm256_sub_ps(load_half8(x + i), load_half8(y + i));
    const __m256 d1 = _mm256_sub_ps(load_half8(x + i + 8), load_half8(y + i + 8));
    a0 = _mm256_fmadd_ps(d0, d0, a0);
    a1 = _mm256_fmadd_ps(d1, d1, a1);
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 d = _mm256_sub_ps(load_half8(x + i), load_half8(y + i));
    a0 = _mm256_fmadd_ps(d, d, a0);
  }
  float s = hsum256(_mm256_add_ps(a0, a1));
  for (; i < n; i++) {
    const float d = half_to_float(x[i]) - half_to_float(y[i]);
    s += d * d;
  }
  return s;
}

__attribute__((target("avx2"))) inline int32_t hsum256_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

__attribute__((target("avx2"))) inline I8Sums sums_i8_avx2(const int8_t* x, const int8_t* y, size_t n) {
  __m256i dot = _mm256_setzero_si256(), xx = dot, yy = dot, sq = dot;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i a = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
    const __m256i b = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y + i)));
    const __m256i d = _mm256_sub_epi16(a, b);
    dot = _mm256_add_epi32(dot, _mm256_madd_epi16(a, b));
    xx = _mm256_add_epi32(xx, _mm256_madd_epi16(a, a));
    yy = _mm256_add_epi32(yy, _mm256_madd_epi16(b, b));
    sq = _mm256_add_epi32(sq, _mm256_madd_epi16(d, d));
  }
  I8Sums tail = sums_i8_portable(x + i, y + i, n - i);
  return {hsum256_epi32(dot) + tail.dot, hsum256_epi32(xx) + tail.xx, hsum256_epi32(yy) + tail.yy,
          hsum256_epi32(sq) + tail.sq};
}

__attribute__((target("avx2"))) inline int32_t dot_i8_avx2(const int8_t* x, const int8_t* y, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i x0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
    const __m256i y0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y + i)));
    const __m256i x1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i + 16)));
    const __m256i y1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y + i + 16)));
    a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(x0, y0));
    a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(x1, y1));
  }
  return hsum256_epi32(_mm256_add_epi32(a0, a1)) + dot_i8_portable(x + i, y + i, n - i);
}

__attribute__((target("avx512f,avx512bw"))) inline int32_t dot_i8_avx512(const int8_t* x, const int8_t* y, size_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0;
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512i x0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i)));
    const __m512i y0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(y + i)));
    const __m512i x1 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i + 32)));
    const __m512i y1 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(y + i + 32)));
    a0 = _mm512_add_epi32(a0, _mm512_madd_epi16(x0, y0));
    a1 = _mm512_add_epi32(a1, _mm512_madd_epi16(x1, y1));
  }
  return _mm512_reduce_add_epi32(_mm512_add_epi32(a0, a1)) + dot_i8_avx2(x + i, y + i, n - i);
}

// The dot product of int8 sketches with AVX-512 VNNI's vpdpbusd, which multiplies unsigned bytes by
// signed ones: x + 128 (x with its sign bit flipped) times y, less 128 * sum(y) (`y_sum`, kept with
// y). One instruction per 64 codes where the widening form above takes six.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) inline int32_t dot_i8_vnni(const int8_t* x, const int8_t* y,
                                                                                  size_t n, int32_t y_sum) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512i a0 = _mm512_setzero_si512(), a1 = a0;
  size_t i = 0;
  for (; i + 128 <= n; i += 128) {
    a0 = _mm512_dpbusd_epi32(a0, _mm512_xor_si512(_mm512_loadu_si512(x + i), flip), _mm512_loadu_si512(y + i));
    a1 = _mm512_dpbusd_epi32(a1, _mm512_xor_si512(_mm512_loadu_si512(x + i + 64), flip),
                             _mm512_loadu_si512(y + i + 64));
  }
  for (; i < n; i += 64) {
    // Past the end x reads 0 (+128) and y reads 0: the products there are 0.
    const __mmask64 m = n - i >= 64 ? ~0ull : (1ull << (n - i)) - 1;
    a0 = _mm512_dpbusd_epi32(a0, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, x + i), flip),
                             _mm512_maskz_loadu_epi8(m, y + i));
  }
  return _mm512_reduce_add_epi32(_mm512_add_epi32(a0, a1)) - 128 * y_sum;
}

__attribute__((target("avx512f"))) inline float dot_f32_avx512(const float* x, const float* y, size_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), a1);
  }
  for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i), a1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

__attribute__((target("avx512f"))) inline float l2_f32_avx512(const float* x, const float* y, size_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i));
    const __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16));
    a0 = _mm512_fmadd_ps(d0, d0, a0);
    a1 = _mm512_fmadd_ps(d1, d1, a1);
  }
  for (; i + 16 <= n; i += 16) {
    const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i));
    a0 = _mm512_fmadd_ps(d, d, a0);
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i));
    a1 = _mm512_fmadd_ps(d, d, a1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

__attribute__((target("avx512f"))) inline __m512 load_half16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

__attribute__((target("avx512f"))) inline float dot_f16_avx512(const uint16_t* x, const uint16_t* y, size_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm512_fmadd_ps(load_half16(x + i), load_half16(y + i), a0);
    a1 = _mm512_fmadd_ps(load_half16(x + i + 16), load_half16(y + i + 16), a1);
  }
  for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(load_half16(x + i), load_half16(y + i), a0);
  float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
  for (; i < n; i++) s += half_to_float(x[i]) * half_to_float(y[i]);
  return s;
}

__attribute__((target("avx512f"))) inline float l2_f16_avx512(const uint16_t* x, const uint16_t* y, size_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 d0 = _mm512_sub_ps(load_half16(x + i), load_half16(y + i));
    const __m512 d1 = _mm512_sub_ps(load_half16(x + i + 16), load_half16(y + i + 16));
    a0 = _mm512_fmadd_ps(d0, d0, a0);
    a1 = _mm512_fmadd_ps(d1, d1, a1);
  }
  for (; i + 16 <= n; i += 16) {
    const __m512 d = _mm512_sub_ps(load_half16(x + i), load_half16(y + i));
    a0 = _mm512_fmadd_ps(d, d, a0);
  }
  float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
  for (; i < n; i++) {
    const float d = half_to_float(x[i]) - half_to_float(y[i]);
    s += d * d;
  }
  return s;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif  // AKIDB_X86

enum class Level { portable, avx2, avx512 };

inline Level cpu_level() {
#ifdef AKIDB_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) return Level::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
    return Level::avx2;
#endif
  return Level::portable;
}

/** Whether the CPU has AVX-512 VNNI (Ice Lake, Zen 4 and later), for `dot_i8_vnni`. */
inline bool cpu_has_vnni() {
#ifdef AKIDB_X86
  __builtin_cpu_init();
  return cpu_level() == Level::avx512 && __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

inline const char* level_name(Level level) {
  switch (level) {
    case Level::avx512:
      return "avx512";
    case Level::avx2:
      return "avx2";
    default:
      return "portable";
  }
}

// Distances, smaller is closer: "ip" is 1 - dot, "l2sq" the squared Euclidean distance, "cos"
// (i8 only) 1 - the cosine of the integer vectors (their norms drift from 127 by rounding).
template <Level L>
float ip_f32(const void* a, const void* b, size_t n) {
  const auto* x = static_cast<const float*>(a);
  const auto* y = static_cast<const float*>(b);
#ifdef AKIDB_X86
  if constexpr (L == Level::avx512) return 1.0f - dot_f32_avx512(x, y, n);
  if constexpr (L == Level::avx2) return 1.0f - dot_f32_avx2(x, y, n);
#endif
  return 1.0f - dot_f32_portable(x, y, n);
}

template <Level L>
float l2_f32(const void* a, const void* b, size_t n) {
  const auto* x = static_cast<const float*>(a);
  const auto* y = static_cast<const float*>(b);
#ifdef AKIDB_X86
  if constexpr (L == Level::avx512) return l2_f32_avx512(x, y, n);
  if constexpr (L == Level::avx2) return l2_f32_avx2(x, y, n);
#endif
  return l2_f32_portable(x, y, n);
}

template <Level L>
float ip_f16(const void* a, const void* b, size_t n) {
  const auto* x = static_cast<const uint16_t*>(a);
  const auto* y = static_cast<const uint16_t*>(b);
#ifdef AKIDB_X86
  if constexpr (L == Level::avx512) return 1.0f - dot_f16_avx512(x, y, n);
  if constexpr (L == Level::avx2) return 1.0f - dot_f16_avx2(x, y, n);
#endif
  return 1.0f - dot_f16_portable(x, y, n);
}

template <Level L>
float l2_f16(const void* a, const void* b, size_t n) {
  const auto* x = static_cast<const uint16_t*>(a);
  const auto* y = static_cast<const uint16_t*>(b);
#ifdef AKIDB_X86
  if constexpr (L == Level::avx512) return l2_f16_avx512(x, y, n);
  if constexpr (L == Level::avx2) return l2_f16_avx2(x, y, n);
#endif
  return l2_f16_portable(x, y, n);
}

template <Level L>
I8Sums sums_i8(const void* a, const void* b, size_t n) {
  const auto* x = static_cast<const int8_t*>(a);
  const auto* y = static_cast<const int8_t*>(b);
#ifdef AKIDB_X86
  if constexpr (L != Level::portable) return sums_i8_avx2(x, y, n);
#endif
  return sums_i8_portable(x, y, n);
}

/** The dot product of two int8 sketches; `y_sum` is the sum of y's codes (which only `dot_i8_vnni` needs). */
using SketchDotFn = int32_t (*)(const int8_t* x, const int8_t* y, size_t n, int32_t y_sum);

template <Level L>
int32_t dot_i8(const int8_t* x, const int8_t* y, size_t n) {
#ifdef AKIDB_X86
  if constexpr (L == Level::avx512) return dot_i8_avx512(x, y, n);
  if constexpr (L == Level::avx2) return dot_i8_avx2(x, y, n);
#endif
  return dot_i8_portable(x, y, n);
}

template <Level L>
int32_t sketch_dot(const int8_t* x, const int8_t* y, size_t n, int32_t /*y_sum*/) {
  return dot_i8<L>(x, y, n);
}

template <Level L>
float ip_i8(const void* a, const void* b, size_t n) {
  const int32_t dot = dot_i8<L>(static_cast<const int8_t*>(a), static_cast<const int8_t*>(b), n);
  return 1.0f - static_cast<float>(dot) / (kI8Scale * kI8Scale);
}

template <Level L>
float cos_i8(const void* a, const void* b, size_t n) {
  const I8Sums s = sums_i8<L>(a, b, n);
  if (s.xx == 0 || s.yy == 0) return 1.0f;
  return 1.0f - static_cast<float>(s.dot / std::sqrt(static_cast<double>(s.xx) * s.yy));
}

template <Level L>
float l2_i8(const void* a, const void* b, size_t n) {
  return static_cast<float>(sums_i8<L>(a, b, n).sq) / (kI8Scale * kI8Scale);
}

}  // namespace akidb
