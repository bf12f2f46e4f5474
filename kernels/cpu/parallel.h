// Splitting a loop over the CPU's cores for the kernels of this folder: `parallel_for(n, grain,
// body)` calls body(begin, end) on disjoint ranges that cover [0, n), on this thread and on
// helper threads. A helper waits for the next call by yielding for 200 µs, then sleeps (where
// OpenBLAS's own workers spin for ~0.1 s). A loop shorter than two grains runs here alone.
//
// Each range is a fixed function of n and the thread count, so results never depend on timing;
// a kernel whose ranges write disjoint outputs gives the same bits with any number of threads.
// The thread count is the number of CPUs this process may run on, or GPUGRAD_CPU_THREADS.
// After fork() the child starts without helpers and makes its own on first use.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace gg_cpu {

class Pool {
 public:
  // The process's pool, made on first use (and again in a child after fork).
  static Pool& get() {
    static std::once_flag registered;
    std::call_once(registered, [] { pthread_atfork(nullptr, nullptr, [] { instance() = nullptr; }); });
    static std::mutex making;
    std::lock_guard<std::mutex> guard(making);
    Pool*& pool = instance();
    if (pool == nullptr) pool = new Pool();  // never freed: helpers outlive static destructors
    return *pool;
  }

  int threads() const { return threads_; }

  // body(begin, end) over [0, n) in `parts` contiguous ranges, part 0 on this thread. A call
  // made while another thread's call is running (ctypes lets Python threads in at once) runs
  // on its own thread alone.
  void run(long long n, int parts, const std::function<void(long long, long long)>& body) {
    std::unique_lock<std::mutex> busy(running_, std::try_to_lock);
    if (!busy.owns_lock()) {
      body(0, n);
      return;
    }
    body_ = &body;
    n_ = n;
    parts_ = parts;
    pending_.store(parts - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (sleepers_ > 0) wake_.notify_all();
    }
    body(0, range_end(0));
    // The other parts take about as long as this one: wait for them without sleeping.
    while (pending_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  }

 private:
  Pool() : threads_(count()) {
    for (int i = 1; i < threads_; ++i) std::thread([this, i] { work(i); }).detach();
  }

  static Pool*& instance() {
    static Pool* pool = nullptr;
    return pool;
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

  long long range_end(int part) const { return n_ * (part + 1) / parts_; }

  // Wait for the next call: a short spin first (a training step calls again within
  // microseconds, and waking a sleeping thread costs tens of them), then sleep.
  void wait_for(unsigned long long seen) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(SPIN_US);
    for (int i = 0;; ++i) {
      if (generation_.load(std::memory_order_acquire) != seen) return;
      if ((i & 63) == 63 && std::chrono::steady_clock::now() > until) break;
      std::this_thread::yield();
    }
    std::unique_lock<std::mutex> lock(mutex_);
    ++sleepers_;
    wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
    --sleepers_;
  }

  void work(int part) {
    unsigned long long seen = 0;
    for (;;) {
      wait_for(seen);
      seen = generation_.load(std::memory_order_acquire);
      if (part >= parts_) continue;  // this call was split into fewer parts
      (*body_)(n_ * part / parts_, range_end(part));
      pending_.fetch_sub(1, std::memory_order_release);
    }
  }

  static constexpr int SPIN_US = 200;
  const int threads_;
  std::mutex running_;  // held for a whole run
  std::mutex mutex_;    // guards sleepers_ and the sleeping wait
  std::condition_variable wake_;
  int sleepers_ = 0;
  // Published to the helpers by the release of generation_:
  const std::function<void(long long, long long)>* body_ = nullptr;
  long long n_ = 0;
  int parts_ = 1;
  std::atomic<int> pending_{0};
  std::atomic<unsigned long long> generation_{0};
};

// body(begin, end) over [0, n): split over the pool's threads when n holds at least two grains.
template <typename Body>
void parallel_for(long long n, long long grain, Body body) {
  if (n < 2 * grain) {
    if (n > 0) body(0LL, n);
    return;
  }
  Pool& pool = Pool::get();
  long long parts = n / grain;
  if (parts > pool.threads()) parts = pool.threads();
  if (parts <= 1) {
    body(0LL, n);
    return;
  }
  const std::function<void(long long, long long)> wrapped = body;
  pool.run(n, int(parts), wrapped);
}

}  // namespace gg_cpu
