// NumPy's OpenBLAS running its parallel work on the library's pool (parallel.cpp), through
// OpenBLAS's threads callback: gpugrad/backend/blas_threads.py finds the OpenBLAS that NumPy
// links, hands its parts to gg_blas_attach and installs gg_blas_threads.
//
// OpenBLAS gives the callback `jobs` jobs and a function that runs job k as "thread" t: t
// picks OpenBLAS's per-thread state (thread_status[t], blas_thread_buffer[t]). Its own
// workers keep slots 0 .. workers - 1 and still take work that bypasses the callback (its
// parallel LU posts jobs to them directly), so the jobs here get the top slots, slots - jobs
// .. slots - 1, which no worker uses; calls are taken one at a time, so no two share a slot.
// A level-3 job waits for the others' packed panels, so each job needs a thread of its own,
// all at once (pool_run_each). Where the pool cannot give that (another call holds it, it has
// fewer threads than jobs, the call comes from inside a chunk) or the top slots would reach
// the workers', the call goes to OpenBLAS's own workers, exactly as without the callback.
#include <pthread.h>

#include <cstddef>
#include <functional>
#include <mutex>

#include "parallel.h"

namespace {

// What the callback needs of the OpenBLAS it serves.
struct Blas {
  void (*set_callback)(void*) = nullptr;  // openblas_set_threads_callback_function
  int (*exec)(long, void*) = nullptr;     // exec_blas(num, queue): OpenBLAS's own workers
  const int* workers = nullptr;           // blas_num_threads: its workers are this minus one
  int slots = 0;                          // MAX_CPU_NUMBER: the size of its per-thread state
};

Blas& blas() {
  static Blas attached;
  return attached;
}

// Held for a whole call: slots are handed out per call. Taken across fork() (a child must not
// inherit it locked by a thread that no longer exists there).
std::mutex& calls() {
  static std::mutex held;
  static std::once_flag registered;
  std::call_once(registered, [] {
    pthread_atfork([] { held.lock(); }, [] { held.unlock(); }, [] { held.unlock(); });
  });
  return held;
}

using DoJob = void (*)(int, void*, int);

}  // namespace

extern "C" {

// OpenBLAS's threads callback (its openblas_threads_callback): run `jobs` jobs, the k-th at
// jobdata + k·size, at once, and return when all are done. OpenBLAS always waits (sync = 1).
void gg_blas_threads(int sync, DoJob dojob, int jobs, std::size_t size, void* jobdata,
                     int dojob_data);

// Attach the OpenBLAS to serve: its callback setter, exec_blas, &blas_num_threads and its
// MAX_CPU_NUMBER, then install gg_blas_threads there. Called once, before any product of
// another thread can run through it.
void gg_blas_attach(void* set_callback, void* exec, const int* workers, int slots) {
  Blas& b = blas();
  b.set_callback = reinterpret_cast<void (*)(void*)>(set_callback);
  b.exec = reinterpret_cast<int (*)(long, void*)>(exec);
  b.workers = workers;
  b.slots = slots;
}

void gg_blas_threads(int sync, DoJob dojob, int jobs, std::size_t size, void* jobdata,
                     int dojob_data) {
  (void)sync;
  if (jobs <= 0) return;
  std::lock_guard<std::mutex> serial(calls());
  const Blas& b = blas();
  char* base = static_cast<char*>(jobdata);
  const int first = b.slots - jobs;
  const std::function<void(long long, long long)> run = [&](long long k, long long) {
    dojob(first + int(k), base + k * size, dojob_data);
  };
  // Workers use slots 0 .. *workers - 2.
  if (first >= *b.workers - 1) {
    if (jobs == 1) {
      run(0, 1);
      return;
    }
    if (gg_cpu::pool_run_each(jobs, run)) return;
  }
  // OpenBLAS's own workers, with the callback off meanwhile (exec_blas would call it again);
  // a product another thread starts meanwhile goes to them too, as without the callback.
  b.set_callback(nullptr);
  b.exec(jobs, jobdata);
  b.set_callback(reinterpret_cast<void*>(&gg_blas_threads));
}

}  // extern "C"
