// CPU parallelism: one process-wide pool of worker threads.
#pragma once

#include <cstdint>
#include <functional>

namespace detcore {

// Threads used by CPU kernels: DETCORE_NUM_THREADS if set, else the CPUs this
// process may run on.
int num_threads();
// n >= 1. Takes effect for the next parallel region.
void set_num_threads(int n);

// Calls fn(begin, end) on disjoint ranges that cover [0, n), each (but the
// last) `grain` long or longer, on the pool; the caller's thread works too.
// Runs serially when n <= grain, with one thread, or when nested inside
// another parallel region. The first exception thrown by fn is rethrown here
// once every range has finished.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace detcore
