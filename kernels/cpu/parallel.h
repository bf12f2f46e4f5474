// Splitting a loop over the CPU's cores for the kernels of this folder: `parallel_for(n, grain,
// body)` calls body(begin, end) on disjoint ranges that cover [0, n), on this thread and on
// the helper threads of the library's one pool (parallel.cpp). A loop shorter than two grains
// runs here alone.
//
// Which thread runs which chunk depends on timing; a kernel whose chunks write disjoint outputs
// gives the same bits however they are shared out, and with any number of threads. Helpers run
// in the calling thread's floating-point environment.
#pragma once

#include <cfenv>
#include <functional>
#include <thread>

// Defined once, in parallel.cpp. Hidden: not exported from the library, so a second build of
// it loaded in the same process (a changed source, another cache folder) keeps a pool of its
// own instead of binding to this one's.
#define GG_CPU_HIDDEN __attribute__((visibility("hidden")))

namespace gg_cpu {

// body(begin, end) over [0, n) in chunks of `chunk`, taken in turn by this thread and the
// pool's helpers; on this thread alone when the pool has one thread, or when this thread is
// already running a chunk of the pool's (a nested call).
GG_CPU_HIDDEN void pool_run(long long n, long long chunk,
                            const std::function<void(long long, long long)>& body);

// The pool's thread count (this thread and its helpers), the pool made if it was not yet.
GG_CPU_HIDDEN int pool_threads();

// body(k, k + 1) for each k < jobs, each on a thread of its own and all at once (for jobs that
// wait for one another); false, with nothing run, where the pool cannot promise that: another
// call holds it, it has fewer threads than jobs, or this thread is running a chunk of its own.
GG_CPU_HIDDEN bool pool_run_each(long long jobs,
                                 const std::function<void(long long, long long)>& body);

// Internal linkage: the lambdas each kernel instantiates this with stay inside its own file.
namespace {

// How many units of `unit` elements each make a part of about `grain` elements (at least one):
// the grain of a loop over rows, planes or heads.
inline long long units_per_part(long long unit, long long grain) {
  return unit >= grain ? 1 : grain / (unit > 0 ? unit : 1);
}

// `body` as the pool's work, run on every thread in the calling thread's floating-point
// environment (rounding, and on x86 flush-to-zero and denormals-are-zero, which a library
// built with -ffast-math switches on when loaded), as the caller's own part and a NumPy twin
// are. `body` must outlive the call that runs it.
template <typename Body>
std::function<void(long long, long long)> in_callers_fenv(const Body& body) {
  std::fenv_t caller;
  std::fegetenv(&caller);
  const std::thread::id here = std::this_thread::get_id();
  return [&body, caller, here](long long begin, long long end) {
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
}

// body(begin, end) over [0, n) in chunks of `grain`, shared among the pool's threads when n
// holds at least two of them.
template <typename Body>
void parallel_for(long long n, long long grain, Body body) {
  if (n < 2 * grain) {
    if (n > 0) body(0LL, n);
    return;
  }
  pool_run(n, grain, in_callers_fenv(body));
}

}  // namespace
}  // namespace gg_cpu
