// NumPy's OpenBLAS running its parallel work on the library's pool (parallel.cpp), through
// OpenBLAS's threads callback: gpugrad/backend/blas_threads.py finds the OpenBLAS that NumPy
// links, hands its parts to gg_blas_attach and switches the sharing with gg_blas_share.
//
// OpenBLAS gives the callback `jobs` jobs and a function that runs job k as "thread" t: t
// picks OpenBLAS's per-thread state (thread_status[t], blas_thread_buffer[t]). Its own
// workers keep slots 0 .. workers - 2 and still take work that bypasses the callback (its
// parallel LU posts jobs to them directly), so the jobs here get the top slots, slots - jobs
// .. slots - 1, which no worker uses; calls are taken one at a time, so no two share a slot.
// A level-3 job waits for the others' packed panels, so each job needs a thread of its own,
// all at once (pool_run_each). Where the pool cannot give that (another call holds it, the
// call comes from inside a chunk) or the top slots would reach the workers' (OpenBLAS was
// given more threads since), the call runs as OpenBLAS runs it without a callback: job 0 here,
// the others on its workers.
//
// Not covered: OpenBLAS raising its thread count (openblas_set_num_threads) past what sharing
// was switched on for while a product runs, which can start workers on slots in use here.
#include <pthread.h>

#include <cstddef>
#include <mutex>

#include "parallel.h"

namespace {

using DoJob = void (*)(int, void*, int);

// What the callback needs of the OpenBLAS it serves.
struct Blas {
  void (*set_callback)(void*) = nullptr;    // openblas_set_threads_callback_function
  int (*post)(long, void*) = nullptr;       // exec_blas_async(pos, queue): to its workers
  int (*wait)(long, void*) = nullptr;       // exec_blas_async_wait(num, queue)
  const int* workers = nullptr;             // blas_num_threads: its workers are this minus one
  const int* threads = nullptr;             // blas_cpu_number: its threads per call at most
  int slots = 0;                            // MAX_CPU_NUMBER: the size of its per-thread state
};

Blas& blas() {
  static Blas attached;
  return attached;
}

// Held for a whole call (slots are handed out per call) and while the sharing is switched.
// Taken across fork(), after the pool's own lock (parallel.cpp): a child must not inherit it
// locked by a thread that does not exist there, and the two are always taken in this order.
std::mutex& calls() {
  static std::mutex held;
  static std::once_flag registered;
  std::call_once(registered, [] {
    gg_cpu::pool_threads();  // the pool's fork handlers first: they run after these
    pthread_atfork([] { held.lock(); }, [] { held.unlock(); }, [] { held.unlock(); });
  });
  return held;
}

// Whether the top `jobs` slots lie above the workers' (0 .. workers - 2).
bool above_workers(const Blas& b, int jobs) { return b.slots - jobs >= *b.workers - 1; }

}  // namespace

extern "C" {

// OpenBLAS's threads callback (its openblas_threads_callback): run `jobs` jobs, the k-th at
// jobdata + k·size, at once, and return when all are done. OpenBLAS always waits (sync = 1).
void gg_blas_threads(int sync, DoJob dojob, int jobs, std::size_t size, void* jobdata,
                     int dojob_data) {
  (void)sync;
  if (jobs <= 0) return;
  std::lock_guard<std::mutex> serial(calls());
  const Blas& b = blas();
  char* base = static_cast<char*>(jobdata);
  const int first = b.slots - jobs;
  if (above_workers(b, jobs)) {
    const auto job = [&](long long k, long long) {
      dojob(first + int(k), base + k * size, dojob_data);
    };
    if (jobs == 1) {
      job(0, 1);
      return;
    }
    if (gg_cpu::pool_run_each(jobs, gg_cpu::in_callers_fenv(job))) return;
  }
  // As OpenBLAS's exec_blas runs it without a callback: jobs 1.. to its workers (the queue is
  // linked), job 0 here on the last slot, which no worker uses, then wait for them.
  if (jobs > 1) b.post(1, base + size);
  dojob(b.slots - 1, base, dojob_data);
  if (jobs > 1) b.wait(jobs - 1, base + size);
}

// Attach the OpenBLAS to serve: its callback setter, exec_blas_async, exec_blas_async_wait,
// &blas_num_threads, &blas_cpu_number and its MAX_CPU_NUMBER.
void gg_blas_attach(void* set_callback, void* post, void* wait, const int* workers,
                    const int* threads, int slots) {
  std::lock_guard<std::mutex> serial(calls());
  Blas& b = blas();
  b.set_callback = reinterpret_cast<void (*)(void*)>(set_callback);
  b.post = reinterpret_cast<int (*)(long, void*)>(post);
  b.wait = reinterpret_cast<int (*)(long, void*)>(wait);
  b.workers = workers;
  b.threads = threads;
  b.slots = slots;
}

// Switch the sharing on or off; returns whether it is on. On only where the pool can take
// every call OpenBLAS makes now: as many threads as OpenBLAS uses, and top slots for them all
// above its workers' (else every call would go to the workers, and the pool's long spin
// would only get in their way).
int gg_blas_share(int enable) {
  std::lock_guard<std::mutex> serial(calls());
  Blas& b = blas();
  if (b.set_callback == nullptr) return 0;
  const bool fits = gg_cpu::pool_threads() >= *b.threads && above_workers(b, *b.threads);
  const bool on = enable != 0 && fits;
  b.set_callback(on ? reinterpret_cast<void*>(&gg_blas_threads) : nullptr);
  return on ? 1 : 0;
}

}  // extern "C"
