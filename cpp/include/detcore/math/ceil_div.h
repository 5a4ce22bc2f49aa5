// Integer ceiling division, for block and chunk counts on the host and the
// device alike.
#pragma once

#include "detcore/macros.h"

namespace detcore::math {

// ceil(a / b) for a >= 0, b > 0.
template <typename T>
DETCORE_HOST_DEVICE constexpr T ceil_div(T a, T b) {
  return (a + b - 1) / b;
}

}  // namespace detcore::math
