// Checks every distance kernel this CPU can run against the portable loops: the integer ones exactly,
// the float ones to a relative 1e-5 (they add in another order). Lengths 0-300 and 1024, values over
// each type's whole range. Prints one line per kernel family; exits 1 on the first disagreement.
// Built and run by control-plane/test/native-kernels.test.ts.
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "../distance.h"

using namespace akidb;

namespace {

std::mt19937 rng(20261201);

int fail(const std::string& what, size_t n, double want, double got) {
  std::printf("MISMATCH %s n=%zu: portable %.9g, kernel %.9g\n", what.c_str(), n, want, got);
  std::exit(1);
}

void check_float(const std::string& what, size_t n, float want, float got) {
  if (std::fabs(want - got) > 1e-5f * std::max(1.0f, std::fabs(want))) fail(what, n, want, got);
}

template <Level L>
void check_level(const char* name) {
  std::uniform_real_distribution<float> real(-1.0f, 1.0f);
  std::uniform_int_distribution<int> code(-127, 127);
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 300; n++) lengths.push_back(n);
  lengths.push_back(1024);
  for (size_t n : lengths) {
    std::vector<float> fx(n), fy(n);
    std::vector<uint16_t> hx(n), hy(n);
    std::vector<int8_t> ix(n), iy(n);
    int32_t y_sum = 0;
    for (size_t i = 0; i < n; i++) {
      fx[i] = real(rng);
      fy[i] = real(rng);
      hx[i] = float_to_half(fx[i]);
      hy[i] = float_to_half(fy[i]);
      ix[i] = static_cast<int8_t>(code(rng));
      iy[i] = static_cast<int8_t>(code(rng));
      y_sum += iy[i];
    }
    const std::string at = std::string(name) + " ";
    check_float(at + "ip_f32", n, ip_f32<Level::portable>(fx.data(), fy.data(), n), ip_f32<L>(fx.data(), fy.data(), n));
    check_float(at + "l2_f32", n, l2_f32<Level::portable>(fx.data(), fy.data(), n), l2_f32<L>(fx.data(), fy.data(), n));
    check_float(at + "ip_f16", n, ip_f16<Level::portable>(hx.data(), hy.data(), n), ip_f16<L>(hx.data(), hy.data(), n));
    check_float(at + "l2_f16", n, l2_f16<Level::portable>(hx.data(), hy.data(), n), l2_f16<L>(hx.data(), hy.data(), n));
    const I8Sums want = sums_i8<Level::portable>(ix.data(), iy.data(), n);
    const I8Sums got = sums_i8<L>(ix.data(), iy.data(), n);
    if (want.dot != got.dot || want.xx != got.xx || want.yy != got.yy || want.sq != got.sq)
      fail(at + "sums_i8", n, want.dot, got.dot);
    const int32_t dot = dot_i8<Level::portable>(ix.data(), iy.data(), n);
    if (dot_i8<L>(ix.data(), iy.data(), n) != dot) fail(at + "dot_i8", n, dot, dot_i8<L>(ix.data(), iy.data(), n));
#ifdef AKIDB_X86
    if (L == Level::avx512 && cpu_has_vnni() && dot_i8_vnni(ix.data(), iy.data(), n, y_sum) != dot)
      fail(at + "dot_i8_vnni", n, dot, dot_i8_vnni(ix.data(), iy.data(), n, y_sum));
#endif
  }
  std::printf("%s: agrees%s\n", name, L == Level::avx512 && cpu_has_vnni() ? " (and vnni)" : "");
}

}  // namespace

int main() {
  const Level level = cpu_level();
  check_level<Level::portable>("portable");
  if (level == Level::avx2 || level == Level::avx512) check_level<Level::avx2>("avx2");
  if (level == Level::avx512) check_level<Level::avx512>("avx512");
  return 0;
}
