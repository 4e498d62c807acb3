// The helper threads of parallel_chunks (cpu_workers.h).
#include "cpu_workers.h"

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <ATen/Parallel.h>

namespace fastsnn {
namespace {


// One parallel loop. Helpers hold it by shared_ptr: one that wakes after the loop has ended
// finds no chunk left and never calls fn (which may be gone by then).
struct Loop {
  const std::function<void(int64_t)>* fn;
  int64_t chunks;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::mutex err_mutex;
  std::exception_ptr err;

  // Runs chunks until none is left.
  void work() {
    for (int64_t c = next.fetch_add(1); c < chunks; c = next.fetch_add(1)) {
      try {
        (*fn)(c);
      } catch (...) {
        std::lock_guard<std::mutex> g(err_mutex);
        if (!err) err = std::current_exception();
      }
      if (done.fetch_add(1, std::memory_order_acq_rel) + 1 == chunks) done.notify_all();
    }
  }
};

class Helpers {
 public:
  // The loop's helpers (threads - 1 of them) are told to join; the caller then works too.
  void run(int64_t chunks, int64_t threads, const std::function<void(int64_t)>& fn) {
    auto loop = std::make_shared<Loop>();
    loop->fn = &fn;
    loop->chunks = chunks;
    {
      std::lock_guard<std::mutex> g(mutex_);
      while (static_cast<int64_t>(threads_.size()) < threads - 1) {
        threads_.emplace_back([this] { serve(); });
        threads_.back().detach();
      }
      loop_ = loop;
      wanted_ = threads - 1;
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    loop->work();
    {
      std::lock_guard<std::mutex> g(mutex_);
      loop_.reset();  // helpers that wake from now on stay asleep
    }
    for (int64_t d = loop->done.load(std::memory_order_acquire); d != chunks;
         d = loop->done.load(std::memory_order_acquire)) {
      loop->done.wait(d, std::memory_order_acquire);
    }
    if (loop->err) std::rethrow_exception(loop->err);
  }

  std::mutex busy;  // one loop at a time uses the helpers

 private:
  void serve() {
    uint64_t seen = 0;
    for (;;) {
      std::shared_ptr<Loop> loop;
      {
        std::unique_lock<std::mutex> g(mutex_);
        cv_.wait(g, [&] { return generation_.load(std::memory_order_relaxed) != seen; });
        seen = generation_.load(std::memory_order_relaxed);
        if (wanted_ > 0 && loop_) {
          --wanted_;
          loop = loop_;
        }
      }
      if (loop) loop->work();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::thread> threads_;
  std::shared_ptr<Loop> loop_;
  int64_t wanted_ = 0;
  std::atomic<uint64_t> generation_{0};
};

// The process's helpers. After fork() the child has none of the parent's threads: it makes its
// own (the parent's object is left alone; its mutexes may have been held at the fork).
Helpers& helpers() {
  static std::atomic<Helpers*> instance{nullptr};
  static std::atomic<pid_t> owner{0};
  static std::mutex create;
  const pid_t pid = getpid();
  Helpers* h = instance.load(std::memory_order_acquire);
  if (h != nullptr && owner.load(std::memory_order_acquire) == pid) return *h;
  std::lock_guard<std::mutex> g(create);
  h = instance.load(std::memory_order_acquire);
  if (h == nullptr || owner.load(std::memory_order_acquire) != pid) {
    h = new Helpers();  // never deleted: detached helpers may outlive static destructors
    instance.store(h, std::memory_order_release);
    owner.store(pid, std::memory_order_release);
  }
  return *h;
}

}  // namespace

int64_t cpu_threads() { return std::max<int64_t>(1, at::get_num_threads()); }

void parallel_chunks(int64_t chunks, int64_t threads, const std::function<void(int64_t)>& fn) {
  threads = std::min(threads, chunks);
  if (chunks <= 0) return;
  if (threads <= 1 || at::in_parallel_region()) {
    for (int64_t c = 0; c < chunks; ++c) fn(c);
    return;
  }
  Helpers& h = helpers();
  std::unique_lock<std::mutex> busy(h.busy, std::try_to_lock);
  if (!busy.owns_lock()) {
    for (int64_t c = 0; c < chunks; ++c) fn(c);
    return;
  }
  h.run(chunks, threads, fn);
}

}  // namespace fastsnn
