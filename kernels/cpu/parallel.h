// Splitting a loop over the CPU's cores for the kernels of this folder: `parallel_for(n, grain,
// body)` calls body(begin, end) on disjoint ranges that cover [0, n), on this thread and on
// helper threads. A helper waits for the next call by yielding for 200 µs, then sleeps (where
// OpenBLAS's own workers spin for ~0.1 s). A loop shorter than two grains runs here alone.
//
// Which thread runs which chunk depends on timing; a kernel whose chunks write disjoint outputs
// gives the same bits however they are shared out, and with any number of threads.
// The thread count is the number of CPUs this process may run on, or GPUGRAD_CPU_THREADS.
// After fork() the child starts without helpers and makes its own on first use. Helpers run in
// the calling thread's floating-point environment.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cfenv>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace gg_cpu {
// Internal linkage: two builds of this library loaded in one process (a changed source, another
// cache folder) must not share one pool through GNU_UNIQUE statics laid out differently.
namespace {

class Pool {
 public:
  // The process's pool, made on first use (and again in a child after fork).
  static Pool& get() {
    static std::once_flag registered;
    // fork() with `making` held by another thread would leave the child's copy locked for
    // good: hold it across the fork, then release it on both sides.
    std::call_once(registered, [] {
      pthread_atfork([] { making().lock(); }, [] { making().unlock(); },
                     [] {
                       instance() = nullptr;
                       making().unlock();
                     });
    });
    std::lock_guard<std::mutex> guard(making());
    Pool*& pool = instance();
    if (pool == nullptr) pool = new Pool();  // never freed: helpers outlive static destructors
    return *pool;
  }

  int threads() const { return threads_; }

  // body(begin, end) over [0, n) in chunks of `chunk`, taken in turn by this thread and the
  // helpers that are free to run: where a helper cannot (another thread holds its core), this
  // thread does the chunks itself instead of waiting. A call made while another thread's call
  // is running (ctypes lets Python threads in at once) runs on its own thread alone.
  void run(long long n, long long chunk, const std::function<void(long long, long long)>& body) {
    std::unique_lock<std::mutex> busy(running_, std::try_to_lock);
    if (!busy.owns_lock()) {
      body(0, n);
      return;
    }
    Job job{&body, n, chunk, (n + chunk - 1) / chunk, 0};
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job.generation = ++generation_;
      job_ = job;
      finished_.store(0, std::memory_order_relaxed);
      next_.store(job.generation << 32, std::memory_order_release);
      if (sleepers_ > 0) wake_.notify_all();
    }
    take_chunks(job);
    // Only chunks a helper has started are left: wait for them without sleeping.
    while (finished_.load(std::memory_order_acquire) != job.chunks) std::this_thread::yield();
  }

 private:
  // Helpers start once every member is constructed (they use them at once).
  Pool() { threads_ = start_helpers(count()); }

  // Start up to wanted - 1 helpers; the thread count is 1 + those that started (a process at
  // its thread limit gets fewer, and an exception must not cross the library's C interface).
  int start_helpers(int wanted) {
    int started = 1;
    for (; started < wanted; ++started) {
      try {
        std::thread([this] { work(); }).detach();
      } catch (...) {
        break;
      }
    }
    return started;
  }

  static Pool*& instance() {
    static Pool* pool = nullptr;
    return pool;
  }

  static std::mutex& making() {
    static std::mutex guard;
    return guard;
  }

  static int count() {
    if (const char* text = std::getenv("GPUGRAD_CPU_THREADS")) {
      const int wanted = std::atoi(text);
      if (wanted >= 1) return wanted;
    }
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0) {
      const int n = CPU_COUNT(&allowed);
      if (n >= 1) return n;
    }
    const unsigned n = std::thread::hardware_concurrency();
    return n >= 1 ? int(n) : 1;
  }

  // One call's work. next_ holds the call's generation (high 32 bits) and the next chunk (low
  // 32), so a helper still holding an earlier call's Job can never take a chunk of this one.
  struct Job {
    const std::function<void(long long, long long)>* body;
    long long n, chunk, chunks;
    unsigned long long generation;
  };

  // Run chunks of `job` until none is left.
  void take_chunks(const Job& job) {
    const unsigned long long tag = job.generation << 32;
    unsigned long long current = next_.load(std::memory_order_acquire);
    for (;;) {
      const long long k = (long long)(current & 0xffffffffULL);
      if ((current & ~0xffffffffULL) != tag || k >= job.chunks) return;
      if (!next_.compare_exchange_weak(current, current + 1, std::memory_order_acq_rel)) {
        continue;  // current now holds the value seen instead
      }
      const long long begin = k * job.chunk;
      (*job.body)(begin, begin + job.chunk < job.n ? begin + job.chunk : job.n);
      finished_.fetch_add(1, std::memory_order_release);
      current = next_.load(std::memory_order_acquire);
    }
  }

  // Wait for a call after `seen`: a short spin first (a training step calls again within
  // microseconds, and waking a sleeping thread costs tens of them), then sleep. Returns the
  // call's Job.
  Job wait_for(unsigned long long seen) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(SPIN_US);
    for (int i = 0;; ++i) {
      if ((next_.load(std::memory_order_acquire) >> 32) != seen) break;
      if ((i & 63) == 63 && std::chrono::steady_clock::now() > until) break;
      std::this_thread::yield();
    }
    std::unique_lock<std::mutex> lock(mutex_);
    ++sleepers_;
    wake_.wait(lock, [&] { return generation_ != seen; });
    --sleepers_;
    return job_;
  }

  void work() {
    unsigned long long seen = 0;
    for (;;) {
      const Job job = wait_for(seen);
      seen = job.generation;
      take_chunks(job);
    }
  }

  static constexpr int SPIN_US = 200;
  int threads_ = 1;
  std::mutex running_;  // held for a whole run
  std::mutex mutex_;  // guards job_, generation_, sleepers_ and the sleeping wait
  std::condition_variable wake_;
  int sleepers_ = 0;
  Job job_{nullptr, 0, 1, 0, 0};
  unsigned long long generation_ = 0;
  std::atomic<unsigned long long> next_{0};
  std::atomic<long long> finished_{0};
};

// body(begin, end) over [0, n) in chunks of `grain`, shared among the pool's threads when n
// holds at least two of them.
template <typename Body>
void parallel_for(long long n, long long grain, Body body) {
  if (n < 2 * grain) {
    if (n > 0) body(0LL, n);
    return;
  }
  Pool& pool = Pool::get();
  if (pool.threads() <= 1) {
    body(0LL, n);
    return;
  }
  // A helper runs its chunks in the caller's floating-point environment (rounding, and on x86
  // flush-to-zero and denormals-are-zero, which a library built with -ffast-math switches on
  // when loaded), as the caller's own chunks and a NumPy twin do.
  std::fenv_t caller;
  std::fegetenv(&caller);
  const std::thread::id here = std::this_thread::get_id();
  const std::function<void(long long, long long)> wrapped = [&](long long begin, long long end) {
    if (std::this_thread::get_id() == here) {
      body(begin, end);
      return;
    }
    std::fenv_t own;
    std::fegetenv(&own);
    std::fesetenv(&caller);
    body(begin, end);
    std::fesetenv(&own);
  };
  pool.run(n, grain, wrapped);
}

}  // namespace
}  // namespace gg_cpu
