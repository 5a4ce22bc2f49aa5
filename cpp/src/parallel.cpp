#include "detcore/parallel.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace detcore {
namespace {

thread_local bool tls_in_parallel_region = false;

// More threads are never useful and only risk the process's limits (the
// Python layer refuses more in set_num_threads).
constexpr int kMaxThreads = 1024;

int default_num_threads() {
  if (const char* env = std::getenv("DETCORE_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n >= 1) return std::min(n, kMaxThreads);
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n >= 1) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

// Test hook: DETCORE_TEST_FAIL_THREAD_AT=k makes the creation of worker k
// fail as if the system refused it (rlimits do not bind root in containers).
int fail_thread_creation_at() {
  static const int at = [] {
    const char* env = std::getenv("DETCORE_TEST_FAIL_THREAD_AT");
    return env ? std::atoi(env) : -1;
  }();
  return at;
}

// Workers sleep until run() publishes a job, then pull chunk indices from a
// shared counter until none are left. run() returns once no worker is inside
// the job any more, so the job's closure may safely go out of scope.
class ThreadPool {
 public:
  // Starts up to num_workers workers. When the system refuses a thread
  // (a pids or address-space limit), the pool keeps the workers it has:
  // size() tells how many, failure() why.
  explicit ThreadPool(int num_workers) {
    workers_.reserve(static_cast<size_t>(std::max(num_workers, 0)));
    for (int i = 0; i < num_workers; ++i) {
      if (fail_thread_creation_at() == i) {
        failure_ = "thread creation refused (DETCORE_TEST_FAIL_THREAD_AT)";
        break;
      }
      try {
        workers_.emplace_back([this] { worker_loop(); });
      } catch (const std::exception& e) {
        failure_ = e.what();
        break;
      } catch (...) {
        failure_ = "unknown error";
        break;
      }
    }
  }

  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& worker : workers_) worker.join();
  }

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  const std::string& failure() const { return failure_; }

  // Returns false (and runs nothing) if another thread is using the pool.
  bool try_run(int64_t num_chunks, const std::function<void(int64_t)>& chunk_fn) {
    std::unique_lock<std::mutex> run_lock(run_mutex_, std::try_to_lock);
    if (!run_lock.owns_lock()) return false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &chunk_fn;
      num_chunks_ = num_chunks;
      next_chunk_.store(0);
      error_ = nullptr;
      ++generation_;
    }
    wake_.notify_all();
    drain(chunk_fn, num_chunks);
    std::exception_ptr error;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      done_.wait(lock, [this] { return active_ == 0; });
      job_ = nullptr;
      error = error_;
    }
    if (error) std::rethrow_exception(error);
    return true;
  }

 private:
  void drain(const std::function<void(int64_t)>& chunk_fn, int64_t num_chunks) {
    const bool was_in_region = tls_in_parallel_region;
    tls_in_parallel_region = true;
    for (int64_t chunk = next_chunk_.fetch_add(1); chunk < num_chunks; chunk = next_chunk_.fetch_add(1)) {
      try {
        chunk_fn(chunk);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
    }
    tls_in_parallel_region = was_in_region;
  }

  void worker_loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    uint64_t seen_generation = generation_;
    while (true) {
      wake_.wait(lock, [&] { return stop_ || generation_ != seen_generation; });
      if (stop_) return;
      seen_generation = generation_;
      if (job_ == nullptr) continue;  // woke after that job had already finished
      const auto* job = job_;
      const int64_t num_chunks = num_chunks_;
      ++active_;
      lock.unlock();
      drain(*job, num_chunks);
      lock.lock();
      if (--active_ == 0) done_.notify_all();
    }
  }

  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // one parallel region at a time
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(int64_t)>* job_ = nullptr;
  int64_t num_chunks_ = 0;
  std::atomic<int64_t> next_chunk_{0};
  uint64_t generation_ = 0;
  int active_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  std::string failure_;  // why fewer workers started than asked for
};

// g_pool_mutex guards the three globals below. The fork handlers hold it
// across fork(), so the child never inherits it locked by a thread that
// does not exist there.
std::mutex g_pool_mutex;
std::shared_ptr<ThreadPool> g_pool;
int g_requested_threads = 0;  // 0: default
// After a pool came out smaller than asked, the size it reached: later
// regions use it instead of retrying (and failing) on every call.
int g_thread_limit = 0;  // 0: none
std::string g_pool_failure;

void lock_pool_before_fork() { g_pool_mutex.lock(); }
void unlock_pool_after_fork_in_parent() { g_pool_mutex.unlock(); }

void reset_pool_after_fork_in_child() {
  // The child has only the forking thread: the workers are gone, so the old
  // pool must neither be used nor joined (its own mutexes may be held by
  // threads that do not exist here). Leak it and start afresh. The mutex was
  // locked by this thread in the prepare handler.
  new std::shared_ptr<ThreadPool>(std::move(g_pool));
  g_pool.reset();
  g_thread_limit = 0;
  g_pool_failure.clear();
  g_pool_mutex.unlock();
}

// Registered when the library loads, so a fork is safe whatever detcore
// call came first (or none).
[[maybe_unused]] const bool g_fork_handlers_registered =
    pthread_atfork(lock_pool_before_fork, unlock_pool_after_fork_in_parent, reset_pool_after_fork_in_child) == 0;

int wanted_threads_locked() {
  const int wanted = g_requested_threads > 0 ? g_requested_threads : default_num_threads();
  return g_thread_limit > 0 ? std::min(wanted, g_thread_limit) : wanted;
}

std::shared_ptr<ThreadPool> pool_locked() {
  const int wanted = wanted_threads_locked();
  if (!g_pool || g_pool->size() != wanted) {
    g_pool.reset();  // join the old workers first: they count against the same limits
    g_pool = std::make_shared<ThreadPool>(wanted - 1);
    if (g_pool->size() < wanted) {
      g_thread_limit = g_pool->size();
      g_pool_failure = "could start only " + std::to_string(g_pool->size()) + " of " + std::to_string(wanted) +
                       " threads (" + g_pool->failure() + ")";
    }
  }
  return g_pool;
}

std::shared_ptr<ThreadPool> pool() {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  return pool_locked();
}

}  // namespace

int num_threads() {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  return wanted_threads_locked();
}

int set_num_threads(int n) {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  g_requested_threads = std::clamp(n, 1, kMaxThreads);
  g_thread_limit = 0;
  g_pool_failure.clear();
  return pool_locked()->size();
}

std::string thread_pool_failure() {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  return g_pool_failure;
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  if (n <= grain || tls_in_parallel_region) {
    fn(0, n);
    return;
  }
  auto threads = pool();
  if (threads->size() == 1) {
    fn(0, n);
    return;
  }
  // A few chunks per thread balance uneven work without much scheduling.
  const int64_t num_chunks = std::min<int64_t>((n + grain - 1) / grain, int64_t{threads->size()} * 4);
  const int64_t chunk_size = (n + num_chunks - 1) / num_chunks;
  const std::function<void(int64_t)> run_chunk = [&](int64_t chunk) {
    const int64_t begin = chunk * chunk_size;
    const int64_t end = std::min(n, begin + chunk_size);
    if (begin < end) fn(begin, end);
  };
  if (!threads->try_run(num_chunks, run_chunk)) fn(0, n);
}

}  // namespace detcore
