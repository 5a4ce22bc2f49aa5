// CPU parallelism: one process-wide pool of worker threads.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace detcore {

// Threads used by CPU kernels: DETCORE_NUM_THREADS if set, else the CPUs this
// process may run on; fewer if the system refused to start that many.
int num_threads();
// n in [1, 1024] (clamped). Builds the pool now and returns the threads it runs (the caller's
// included): fewer than n when the system refuses threads part-way (pids or
// address-space limits); thread_pool_failure() then says why.
int set_num_threads(int n);
// Why the pool runs fewer threads than asked for, or "" if it does not.
std::string thread_pool_failure();

// Fork-safe: a child process gets a fresh pool (fork handlers hold the pool's
// lock across fork()), whatever other threads were doing at the fork.
//
// Calls fn(begin, end) on disjoint ranges that cover [0, n), each (but the
// last) `grain` long or longer, on the pool; the caller's thread works too.
// Runs serially when n <= grain, with one thread, or when nested inside
// another parallel region. The first exception thrown by fn is rethrown here
// once every range has finished.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace detcore
