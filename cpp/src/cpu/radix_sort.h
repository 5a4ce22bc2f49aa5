// A stable LSD radix sort of (key, value) pairs for the CPU kernels that
// need an order (nms): far cheaper than a comparison sort for the short
// integer keys they build, and stable, so equal keys keep their input order.
#pragma once

#include <array>
#include <cstdint>
#include <utility>

namespace detcore::cpu {

// Sorts keys[0, n) ascending, moving values along. keys_alt / values_alt are
// scratch of the same length; on return the four pointers may have been
// swapped: keys / values point at the sorted data either way. Byte positions
// in which all keys agree are skipped (class ids 0..79 in int64 keys take one
// pass, not eight).
template <typename K, typename V>
void radix_sort(int64_t n, K*& keys, V*& values, K*& keys_alt, V*& values_alt) {
  constexpr int kPasses = sizeof(K);
  std::array<std::array<int64_t, 256>, kPasses> counts{};
  for (int64_t i = 0; i < n; ++i) {
    const K key = keys[i];
    for (int pass = 0; pass < kPasses; ++pass) ++counts[pass][(key >> (8 * pass)) & 0xFF];
  }
  for (int pass = 0; pass < kPasses; ++pass) {
    auto& offsets = counts[pass];
    bool one_bucket = false;
    int64_t total = 0;
    for (int64_t& count : offsets) {
      if (count == n) one_bucket = true;
      const int64_t start = total;
      total += count;
      count = start;
    }
    if (one_bucket) continue;
    const int shift = 8 * pass;
    for (int64_t i = 0; i < n; ++i) {
      const K key = keys[i];
      const int64_t to = offsets[(key >> shift) & 0xFF]++;
      keys_alt[to] = key;
      values_alt[to] = values[i];
    }
    std::swap(keys, keys_alt);
    std::swap(values, values_alt);
  }
}

}  // namespace detcore::cpu
