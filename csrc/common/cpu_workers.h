// Parallel loops of the CPU kernels that survive a busy machine.
//
// at::parallel_for (OpenMP) splits the work statically and ends in a barrier that every thread
// of the team must reach: when another process holds a core, the thread that lost it holds up
// the caller for a scheduler slice, longer than a small kernel takes (benchmarks/RESULTS.md,
// tests/test_cpu_threads.py). parallel_chunks hands out chunks one at a time from a
// counter, and the caller runs chunks itself; helper threads join only if they start while
// chunks remain, and the caller waits only for chunks a helper has taken, never for a helper
// that has not started. Which thread runs a chunk never changes what it computes, so results
// stay bitwise the same.
#pragma once

#include <cstdint>
#include <functional>

namespace fastsnn {

// fn(c) for c in [0, chunks), on up to `threads` threads (the caller included). Runs inline
// when chunks or threads is 1, inside another parallel region, or while another caller's loop
// is using the helpers. An exception thrown by fn is rethrown in the caller after the loop.
void parallel_chunks(int64_t chunks, int64_t threads, const std::function<void(int64_t)>& fn);

// Threads a parallel loop may use: at::get_num_threads() (torch.set_num_threads).
int64_t cpu_threads();

}  // namespace fastsnn
