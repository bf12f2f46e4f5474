// The library's one thread pool (parallel.h's pool_run and pool_run_each), which also runs
// NumPy's OpenBLAS's parallel work (blas_threads.cpp).
//
// Why one pool: two pools on one machine fight over its cores. OpenBLAS's own workers spin for
// ~0.1 s after each product, so a kernel split over helpers of ours right after a product ran
// at one thread's speed (GELU in a GPT step: 1.2 ms against 0.5 ms alone). Once OpenBLAS hands
// its parallel work to this pool, the products and the kernels take turns on the same helpers.
//
// A helper waits for the next call by spinning (yielding) for a while, then sleeps. The spin
// is 200 µs on its own; while the pool also serves OpenBLAS it is OpenBLAS's own ~0.1 s, as
// the products of a training step come more often than that and waking a sleeping thread costs
// tens of microseconds each time.
// The thread count is the number of CPUs this process may run on, or GPUGRAD_CPU_THREADS.
// After fork() the child starts without helpers and makes its own on first use.
//
// A call publishes a Job: next_ holds its generation (high 32 bits) and the next chunk to take
// (low 32); each thread that takes a chunk bumps next_, runs it and bumps finished_, and the
// caller returns once finished_ counts every chunk.
#include "parallel.h"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>

namespace gg_cpu {
namespace {

// True on a thread while it runs a chunk of the pool's: a call it makes then (a kernel, or an
// OpenBLAS product inside a chunk) runs without the pool instead of waiting for itself.
thread_local bool in_chunk = false;

class Pool {
 public:
  using Body = std::function<void(long long, long long)>;

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

  static void set_spin_us(long long us) { spin_us().store(us, std::memory_order_relaxed); }

  // body(begin, end) over [0, n) in chunks of `chunk`, taken in turn by this thread and the
  // helpers that are free to run: where a helper cannot (another thread holds its core), this
  // thread does the chunks itself instead of waiting. A call made while another thread's call
  // is running (ctypes lets Python threads in at once) runs on its own thread alone.
  void run(long long n, long long chunk, const Body& body) {
    std::unique_lock<std::mutex> busy(running_, std::try_to_lock);
    if (!busy.owns_lock()) {
      body(0, n);
      return;
    }
    const Job job = post(body, n, chunk);
    take_chunks(job, false);
    finish(job);
  }

  // body(k, k + 1) for each k < jobs, each on a thread of its own and all at once, for jobs
  // that wait for one another (OpenBLAS's do); false, with nothing run, where the pool cannot
  // promise that: another call holds it, or it has fewer threads than jobs.
  bool run_each(long long jobs, const Body& body) {
    if (jobs > threads_) return false;
    std::unique_lock<std::mutex> busy(running_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    const Job job = post(body, jobs, 1);
    take_chunks(job, true);
    finish(job);
    return true;
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

  static std::atomic<long long>& spin_us() {
    static std::atomic<long long> us{200};
    return us;
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
    const Body* body;
    long long n, chunk, chunks;
    unsigned long long generation;
  };

  // Publish a call's work and wake the sleeping helpers (running_ is held).
  Job post(const Body& body, long long n, long long chunk) {
    Job job{&body, n, chunk, (n + chunk - 1) / chunk, 0};
    std::lock_guard<std::mutex> lock(mutex_);
    job.generation = ++generation_;
    job_ = job;
    finished_.store(0, std::memory_order_relaxed);
    next_.store(job.generation << 32, std::memory_order_release);
    if (sleepers_ > 0) wake_.notify_all();
    return job;
  }

  // Only chunks a helper has started are left: wait for them without sleeping.
  void finish(const Job& job) {
    while (finished_.load(std::memory_order_acquire) != job.chunks) std::this_thread::yield();
  }

  // Run chunks of `job` until none is left (or after the first, when `one`).
  void take_chunks(const Job& job, bool one) {
    const unsigned long long tag = job.generation << 32;
    unsigned long long current = next_.load(std::memory_order_acquire);
    for (;;) {
      const long long k = (long long)(current & 0xffffffffULL);
      if ((current & ~0xffffffffULL) != tag || k >= job.chunks) return;
      if (!next_.compare_exchange_weak(current, current + 1, std::memory_order_acq_rel)) {
        continue;  // current now holds the value seen instead
      }
      const long long begin = k * job.chunk;
      in_chunk = true;
      (*job.body)(begin, begin + job.chunk < job.n ? begin + job.chunk : job.n);
      in_chunk = false;
      finished_.fetch_add(1, std::memory_order_release);
      if (one) return;
      current = next_.load(std::memory_order_acquire);
    }
  }

  // Wait for a call after `seen`: a spin first (a training step calls again within
  // microseconds, and waking a sleeping thread costs tens of them), then sleep. Returns the
  // call's Job.
  Job wait_for(unsigned long long seen) {
    const auto spin = std::chrono::microseconds(spin_us().load(std::memory_order_relaxed));
    const auto until = std::chrono::steady_clock::now() + spin;
    for (int i = 0;; ++i) {
      if ((next_.load(std::memory_order_acquire) >> 32) != (seen & 0xffffffffULL)) break;
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
      take_chunks(job, false);
    }
  }

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

}  // namespace

void pool_run(long long n, long long chunk, const std::function<void(long long, long long)>& body) {
  if (in_chunk) {
    body(0, n);
    return;
  }
  Pool& pool = Pool::get();
  if (pool.threads() <= 1) {
    body(0, n);
    return;
  }
  pool.run(n, chunk, body);
}

int pool_threads() { return Pool::get().threads(); }

bool pool_run_each(long long jobs, const std::function<void(long long, long long)>& body) {
  if (in_chunk) return false;
  return Pool::get().run_each(jobs, body);
}

}  // namespace gg_cpu

extern "C" {

// How long (µs) an idle helper spins before it sleeps: OpenBLAS's while the pool serves it.
void gg_pool_set_spin_us(long long us) { gg_cpu::Pool::set_spin_us(us < 0 ? 0 : us); }

}  // extern "C"
