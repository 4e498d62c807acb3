// The runtime of the host CUDA emulation (cuda_emu.h): grid and block scheduling with one fiber
// per thread, barriers and warp collectives, the emulated device's attributes, and the checker
// that the -fsanitize=thread instrumentation of the kernel units calls before every access.
// This unit itself is compiled without instrumentation.
//
// Checker rules (a finding stops the launch before the offending access is made):
// - shared memory (dynamic and static): a write, and an access by another thread of the block
//   to the same bytes within one barrier epoch (between two __syncthreads), is a race; a read
//   of bytes no thread of the block wrote is a read of uninitialised memory; an access past the
//   launch's dynamic size is out of bounds.
// - global memory: every access must fall inside a buffer the caller registered (or the
//   thread's own stack, the kernel's argument copy, or the library's constant data); a write to
//   a read-only buffer or to the arguments is a finding; for writable buffers, a write and an
//   access by another thread to the same bytes is a race unless both threads are of one block
//   and a barrier separates them.
// __syncwarp orders execution only: the checker does not take it as ordering memory.
#include <dlfcn.h>
#include <link.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cuda_emu.h"

namespace fastsnn_emu {
namespace {

// ---- Device ----------------------------------------------------------------------------------

struct Device {
  int sms = 132;                // an H100/H200 (SXM)
  int smem_default = 48 * 1024;  // dynamic shared memory without the opt-in attribute
  int smem_optin = 232448;       // cudaDevAttrMaxSharedMemoryPerBlockOptin: 227 KB
} g_dev;

cudaError_t g_last_error = cudaSuccess;
std::map<const void*, int> g_max_dyn_smem;  // cudaFuncAttributeMaxDynamicSharedMemorySize

// ---- Buffers and findings ------------------------------------------------------------------

// Per 4-byte word of checked memory: the last writer and reader (thread id + 1, 0 = none; the
// top 4 bits are the bytes of the word it touched), the barrier epoch of each, their code
// addresses, and which bytes were ever written (shared memory: initialised).
struct Shadow {
  uint32_t w, w_epoch, r, r_epoch, w_pc, r_pc;
  uint8_t init;
};
constexpr uint32_t kIdBits = 0x0fffffffu;
constexpr uint32_t kMulti = 0x0fffffffu;  // several readers in one epoch

struct Buffer {
  std::string name;
  uintptr_t lo, hi;
  bool writable;
  Shadow* shadow = nullptr;  // writable buffers, during a launch
  size_t shadow_bytes = 0;
};
std::vector<Buffer> g_buffers;  // sorted by lo at launch start

std::string g_report;  // the first finding of the last launch, "" when clean

struct Stats {
  long long launches = 0, blocks = 0, threads = 0, accesses = 0, barriers = 0, collectives = 0;
} g_stats;

// The configuration of the last launch: grid.x, block.x, dynamic shared bytes.
long long g_last_launch[3] = {0, 0, 0};
std::set<uintptr_t> g_launched;  // kernels launched so far, as offsets into their library

// ---- Fibers --------------------------------------------------------------------------------

enum class State : uint8_t { Ready, AtBarrier, AtWarp, Exited };

struct Fiber {
  ucontext_t ctx;
  uintptr_t stack_lo = 0;
  dim3 tid;
  uint32_t linear = 0;  // threadIdx linearised
  State state = State::Ready;
  uint64_t result = 0;  // of its last warp collective
};

struct Warp {
  unsigned arrived = 0, mask = 0, exited = 0, exists = 0;
  Coll kind = Coll::Ballot;
  int width = 32;
  uint64_t value[32];
  int arg[32];
};

constexpr size_t kStack = 256 * 1024;  // per fiber, plus a guard page
constexpr size_t kSmemSlack = 4096;     // past the dynamic size: out-of-bounds shared accesses

struct GridRun {
  const void* kernel;
  dim3 grid, block;
  size_t smem_bytes;
  Entry entry;
  void* ctx;
  uintptr_t args_lo, args_hi;
  uint32_t nthreads;
  uintptr_t lib_base;  // of the library holding the kernel (code addresses are kept relative)
  // block state
  dim3 bid;
  uint64_t block_linear = 0;
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  uint32_t at_barrier = 0, exited = 0, epoch = 0;
  // memory
  uintptr_t stacks_lo = 0, stacks_hi = 0;
  unsigned char* smem = nullptr;  // dynamic shared memory (+ slack)
  uintptr_t smem_lo = 0;
  uintptr_t tls_lo = 0, tls_hi = 0;  // static __shared__ (the library's thread-local storage)
  std::vector<Shadow> smem_shadow;    // dynamic words, then static words
  bool abort = false;
};

GridRun* g_launch = nullptr;
Fiber* g_cur = nullptr;
ucontext_t g_sched;
}  // namespace
}  // namespace fastsnn_emu
// Written before each launch so that this thread's TLS block of the library (where static
// __shared__ variables live) exists when the launch looks for it.
extern "C" thread_local volatile char fastsnn_emu_tls_anchor = 0;
namespace fastsnn_emu {
namespace {

uintptr_t code_offset(uintptr_t pc, std::string* lib) {
  Dl_info info;
  if (pc != 0 && dladdr(reinterpret_cast<void*>(pc), &info) && info.dli_fbase != nullptr) {
    if (lib != nullptr && info.dli_fname != nullptr) *lib = info.dli_fname;
    return pc - reinterpret_cast<uintptr_t>(info.dli_fbase);
  }
  return pc;
}

// "{code:LIB:0xOFF}" for a return address in the kernel code, "{func:LIB:0xOFF}" for a
// function: tests/cuda_emu.py turns them into function, file and line (addr2line).
std::string code_ref(uintptr_t pc, bool func = false) {
  if (pc == 0) return "(thread exit)";
  std::string lib;
  const uintptr_t off = code_offset(pc, &lib);
  char buf[64];
  std::snprintf(buf, sizeof buf, ":0x%lx}", static_cast<unsigned long>(off));
  return (func ? "{func:" : "{code:") + lib + buf;
}

std::string fmt(const char* f, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

std::string thread_name(uint64_t gid) {
  const GridRun& L = *g_launch;
  const uint64_t b = gid / L.nthreads, t = gid % L.nthreads;
  const unsigned bx = unsigned(b % L.grid.x), by = unsigned(b / L.grid.x % L.grid.y),
                 bz = unsigned(b / (uint64_t(L.grid.x) * L.grid.y));
  const unsigned tx = unsigned(t % L.block.x), ty = unsigned(t / L.block.x % L.block.y),
                 tz = unsigned(t / (L.block.x * L.block.y));
  return fmt("thread (%u,%u,%u) of block (%u,%u,%u)", tx, ty, tz, bx, by, bz);
}

uint64_t cur_gid() { return g_launch->block_linear * g_launch->nthreads + g_cur->linear; }

std::string finding(const std::string& what, uintptr_t pc) {
  return "CUDA emulation: " + what + "\n  kernel: " +
         code_ref(reinterpret_cast<uintptr_t>(g_launch->kernel), true) + "\n  at: " + code_ref(pc);
}

// A read of uninitialised shared memory is reported at the end of its barrier epoch (or block),
// unless a race on the same schedule is found first: a read that runs ahead of another thread's
// write in one epoch is that race, and the race is the finding.
std::string g_pending;

// Records the finding and leaves the kernel: the fiber is never resumed.
[[noreturn]] void fail_with(const std::string& msg) {
  if (g_report.empty()) g_report = msg;
  g_pending.clear();
  g_launch->abort = true;
  Fiber* f = g_cur;
  swapcontext(&f->ctx, &g_sched);
  std::abort();  // unreachable: an aborted fiber is never resumed
}

[[noreturn]] void fail(const std::string& what, uintptr_t pc) { fail_with(finding(what, pc)); }

// ---- Memory checks -------------------------------------------------------------------------

inline uint32_t id_of(uint32_t v) { return v & kIdBits; }
inline uint32_t mask_of(uint32_t v) { return v >> 28; }

// Do the accesses of gid (now, epoch) and of the recorded id (at prev_epoch) conflict?
inline bool unordered(uint32_t prev_id, uint32_t prev_epoch, uint64_t gid, uint32_t epoch) {
  if (prev_id == 0 || prev_id == gid + 1) return false;
  if (prev_id == kMulti) return prev_epoch == epoch;
  const uint64_t prev = prev_id - 1;
  const uint64_t n = g_launch->nthreads;
  return prev / n != gid / n || prev_epoch == epoch;
}

std::string other_name(uint32_t id) {
  return id == kMulti ? std::string("several threads") : thread_name(id - 1);
}

// Where an access went, formatted only for a finding.
struct Where {
  const char* region;  // "the dynamic shared memory", or a buffer's name
  uintptr_t off;
  size_t n;
  std::string str() const { return fmt("%zu bytes at offset %lu of %s", n, (unsigned long)off, region); }
};

void shadow_access(Shadow* sh, uintptr_t off, size_t n, bool write, uintptr_t pc,
                   const Where& where, bool shared) {
  const uint64_t gid = cur_gid();
  const uint32_t epoch = g_launch->epoch;
  const uint32_t me = static_cast<uint32_t>(gid + 1);
  for (uintptr_t w = off / 4; w <= (off + n - 1) / 4; ++w) {
    const uintptr_t b0 = std::max<uintptr_t>(off, w * 4), b1 = std::min<uintptr_t>(off + n, w * 4 + 4);
    const uint32_t m = ((1u << (b1 - b0)) - 1u) << (b0 - w * 4);
    Shadow& s = sh[w];
    const char* verb = write ? "writes" : "reads";
    if ((mask_of(s.w) & m) && unordered(id_of(s.w), s.w_epoch, gid, epoch)) {
      fail(fmt("%s race: %s %s %s; %s wrote it in the same barrier epoch (%u)\n  other: %s",
               shared ? "shared-memory" : "global-memory", thread_name(gid).c_str(), verb,
               where.str().c_str(), other_name(id_of(s.w)).c_str(), epoch,
               code_ref(g_launch->lib_base + s.w_pc).c_str()),
           pc);
    }
    if (write && (mask_of(s.r) & m) && unordered(id_of(s.r), s.r_epoch, gid, epoch)) {
      fail(fmt("%s race: %s writes %s; %s read it in the same barrier epoch (%u)\n  other: %s",
               shared ? "shared-memory" : "global-memory", thread_name(gid).c_str(),
               where.str().c_str(), other_name(id_of(s.r)).c_str(), epoch, code_ref(g_launch->lib_base + s.r_pc).c_str()),
           pc);
    }
    if (write) {
      const bool same = id_of(s.w) == me && s.w_epoch == epoch;
      s.w = ((same ? mask_of(s.w) | m : m) << 28) | me;
      s.w_epoch = epoch;
      s.w_pc = static_cast<uint32_t>(pc - g_launch->lib_base);
      s.init |= static_cast<uint8_t>(m);
    } else {
      if (shared && (s.init & m) != m && g_pending.empty()) {
        g_pending = finding(fmt("read of uninitialised shared memory: %s reads %s, which no "
                                "thread of the block has written",
                                thread_name(gid).c_str(), where.str().c_str()),
                            pc);
      }
      if (s.r == 0 || s.r_epoch != epoch) {
        s.r = (m << 28) | me;
      } else if (id_of(s.r) == me) {
        s.r |= m << 28;
      } else {
        s.r = ((mask_of(s.r) | m) << 28) | kMulti;
      }
      s.r_epoch = epoch;
      s.r_pc = static_cast<uint32_t>(pc - g_launch->lib_base);
    }
  }
}

const Buffer* find_buffer(uintptr_t a) {
  auto it = std::upper_bound(g_buffers.begin(), g_buffers.end(), a,
                             [](uintptr_t v, const Buffer& b) { return v < b.lo; });
  if (it == g_buffers.begin()) return nullptr;
  --it;
  return a < it->hi ? &*it : nullptr;
}

struct Segment {
  uintptr_t lo, hi;
};
std::vector<Segment> g_static;  // loaded segments of this library (constant data, code)

std::string describe_wild(uintptr_t a) {
  const Buffer* near = nullptr;
  uintptr_t best = ~uintptr_t(0);
  for (const Buffer& b : g_buffers) {
    const uintptr_t d = a < b.lo ? b.lo - a : a - b.hi + 1;
    if (d < best) {
      best = d;
      near = &b;
    }
  }
  if (near == nullptr) return fmt("address 0x%lx (no buffer is registered)", (unsigned long)a);
  if (a >= near->hi) {
    return fmt("address 0x%lx, %lu bytes past the end of buffer '%s' (%lu bytes)",
               (unsigned long)a, (unsigned long)(a - near->hi), near->name.c_str(),
               (unsigned long)(near->hi - near->lo));
  }
  return fmt("address 0x%lx, %lu bytes before buffer '%s' (%lu bytes)", (unsigned long)a,
             (unsigned long)(near->lo - a), near->name.c_str(),
             (unsigned long)(near->hi - near->lo));
}

void global_access(uintptr_t a, size_t n, bool write, uintptr_t pc) {
  GridRun& L = *g_launch;
  const Buffer* b = find_buffer(a);
  const char* verb = write ? "writes" : "reads";
  if (b != nullptr) {
    if (a + n > b->hi) {
      fail(fmt("out-of-bounds global access: %s %s %zu bytes at offset %lu of buffer '%s' "
               "(%lu bytes)",
               thread_name(cur_gid()).c_str(), verb, n, (unsigned long)(a - b->lo),
               b->name.c_str(), (unsigned long)(b->hi - b->lo)),
           pc);
    }
    if (write && !b->writable) {
      fail(fmt("write to a read-only buffer: %s writes %zu bytes at offset %lu of '%s'",
               thread_name(cur_gid()).c_str(), n, (unsigned long)(a - b->lo), b->name.c_str()),
           pc);
    }
    if (b->shadow != nullptr) {
      shadow_access(b->shadow, a - b->lo, n, write, pc, Where{b->name.c_str(), a - b->lo, n},
                    false);
    }
    return;
  }
  if (a >= L.args_lo && a < L.args_hi) {
    if (write) fail("write to the kernel's arguments by " + thread_name(cur_gid()), pc);
    return;
  }
  if (a >= L.stacks_lo && a < L.stacks_hi) {
    fail(fmt("%s %s another thread's local memory (address 0x%lx)",
             thread_name(cur_gid()).c_str(), verb, (unsigned long)a),
         pc);
  }
  for (const Segment& s : g_static) {
    if (a >= s.lo && a < s.hi) {
      if (write) fail("write to the library's static data by " + thread_name(cur_gid()), pc);
      return;
    }
  }
  fail(fmt("out-of-bounds global access: %s %s %zu bytes at %s", thread_name(cur_gid()).c_str(),
           verb, n, describe_wild(a).c_str()),
       pc);
}

inline void on_access(uintptr_t a, size_t n, bool write, uintptr_t pc) {
  Fiber* f = g_cur;
  if (f == nullptr || n == 0) return;  // host code of the kernel units, outside a launch
  GridRun& L = *g_launch;
  ++g_stats.accesses;
  if (a - f->stack_lo < kStack) return;  // the thread's own locals
  if (a - L.smem_lo < L.smem_bytes + kSmemSlack) {
    const uintptr_t off = a - L.smem_lo;
    if (off + n > L.smem_bytes) {
      fail(fmt("out-of-bounds shared access: %s %s %zu bytes at offset %lu of the dynamic "
               "shared memory (%zu bytes)",
               thread_name(cur_gid()).c_str(), write ? "writes" : "reads", n,
               (unsigned long)off, L.smem_bytes),
           pc);
    }
    shadow_access(L.smem_shadow.data(), off, n, write, pc,
                  Where{"the dynamic shared memory", off, n}, true);
    return;
  }
  if (a >= L.tls_lo && a < L.tls_hi) {
    const uintptr_t off = a - L.tls_lo;
    shadow_access(L.smem_shadow.data() + (L.smem_bytes + 3) / 4, off, n, write, pc,
                  Where{"the static shared memory", off, n}, true);
    return;
  }
  global_access(a, n, write, pc);
}

// ---- Scheduling ----------------------------------------------------------------------------

const char* coll_name(Coll kind) {
  static const char* names[] = {"__ballot_sync",  "__any_sync",       "__all_sync",
                                "__shfl_sync",    "__shfl_up_sync",   "__shfl_down_sync",
                                "__shfl_xor_sync", "__syncwarp"};
  return names[static_cast<int>(kind)];
}

void yield_to_scheduler() {
  Fiber* f = g_cur;
  swapcontext(&f->ctx, &g_sched);
}

void fiber_main() {
  GridRun& L = *g_launch;
  L.entry(L.ctx);
  Fiber* f = g_cur;
  const uint32_t lane = f->linear & 31, w = f->linear >> 5;
  Warp& wp = L.warps[w];
  if (wp.arrived != 0 && (wp.mask >> lane & 1u) && !(wp.arrived >> lane & 1u)) {
    fail(fmt("%s exits while lanes 0x%08x of its warp wait for it in %s (mask 0x%08x)",
             thread_name(cur_gid()).c_str(), wp.arrived, coll_name(wp.kind), wp.mask),
         0);
  }
  if (L.at_barrier > 0) {
    fail(fmt("%s exits while %u threads of its block wait at __syncthreads: not every thread "
             "reaches the barrier",
             thread_name(cur_gid()).c_str(), L.at_barrier),
         0);
  }
  wp.exited |= 1u << lane;
  f->state = State::Exited;
  ++L.exited;
  // returns to uc_link (the scheduler)
}

int tls_callback(dl_phdr_info* info, size_t, void* data) {
  auto* L = static_cast<GridRun*>(data);
  const uintptr_t me = reinterpret_cast<uintptr_t>(&fiber_main);
  bool mine = false;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_LOAD) {
      const uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
      if (me >= lo && me < lo + ph.p_memsz) mine = true;
    }
  }
  if (!mine) return 0;
  g_static.clear();
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_LOAD) {
      g_static.push_back({info->dlpi_addr + ph.p_vaddr, info->dlpi_addr + ph.p_vaddr + ph.p_memsz});
    } else if (ph.p_type == PT_TLS && info->dlpi_tls_data != nullptr) {
      L->tls_lo = reinterpret_cast<uintptr_t>(info->dlpi_tls_data);
      L->tls_hi = L->tls_lo + ph.p_memsz;
    }
  }
  return 1;
}

void run_block(GridRun& L) {
  L.at_barrier = L.exited = L.epoch = 0;
  std::fill(L.smem_shadow.begin(), L.smem_shadow.end(), Shadow{});
  if (L.smem_bytes > 0) std::memset(L.smem, 0xff, L.smem_bytes);
  if (L.tls_hi > L.tls_lo) std::memset(reinterpret_cast<void*>(L.tls_lo), 0xff, L.tls_hi - L.tls_lo);
  for (Warp& w : L.warps) {
    const unsigned exists = w.exists;
    w = Warp{};
    w.exists = exists;
  }
  for (uint32_t t = 0; t < L.nthreads; ++t) {
    Fiber& f = L.fibers[t];
    f.state = State::Ready;
    f.result = 0;
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = reinterpret_cast<void*>(f.stack_lo);
    f.ctx.uc_stack.ss_size = kStack;
    f.ctx.uc_link = &g_sched;
    makecontext(&f.ctx, fiber_main, 0);
  }
  ++g_stats.blocks;
  g_stats.threads += L.nthreads;
  for (;;) {
    bool ran = false;
    for (uint32_t t = 0; t < L.nthreads; ++t) {
      Fiber& f = L.fibers[t];
      if (f.state != State::Ready) continue;
      g_cur = &f;
      swapcontext(&g_sched, &f.ctx);
      g_cur = nullptr;
      ran = true;
      if (L.abort) return;
    }
    if (L.exited == L.nthreads) {
      if (!g_pending.empty()) {
        if (g_report.empty()) g_report = g_pending;
        g_pending.clear();
        L.abort = true;
      }
      return;
    }
    if (!ran) {
      uint32_t barrier = 0, warp = 0;
      for (const Fiber& f : L.fibers) {
        barrier += f.state == State::AtBarrier;
        warp += f.state == State::AtWarp;
      }
      if (g_report.empty()) {
        g_report = fmt(
            "CUDA emulation: deadlock in block (%u,%u,%u): %u threads wait at __syncthreads "
            "and %u in warp collectives whose other lanes are elsewhere\n  kernel: ",
            L.bid.x, L.bid.y, L.bid.z, barrier, warp) +
                   code_ref(reinterpret_cast<uintptr_t>(L.kernel), true);
      }
      L.abort = true;
      return;
    }
  }
}

}  // namespace

// ---- The device side of cuda_emu.h ---------------------------------------------------------

dim3 thread_idx() { return g_cur->tid; }
dim3 block_idx() { return g_launch->bid; }
dim3 block_dim() { return g_launch->block; }
dim3 grid_dim() { return g_launch->grid; }
unsigned char* dynamic_smem() { return g_launch->smem; }

void syncthreads() {
  GridRun& L = *g_launch;
  Fiber* f = g_cur;
  const uintptr_t pc = reinterpret_cast<uintptr_t>(__builtin_return_address(0));
  ++g_stats.barriers;
  if (L.exited > 0) {
    fail(fmt("%s reaches __syncthreads after %u threads of its block exited: not every thread "
             "reaches the barrier",
             thread_name(cur_gid()).c_str(), L.exited),
         pc);
  }
  if (++L.at_barrier == L.nthreads) {
    if (!g_pending.empty()) fail_with(g_pending);
    L.at_barrier = 0;
    ++L.epoch;
    for (Fiber& o : L.fibers) {
      if (o.state == State::AtBarrier) o.state = State::Ready;
    }
    return;
  }
  f->state = State::AtBarrier;
  yield_to_scheduler();
}

uint64_t warp_collective(Coll kind, unsigned mask, uint64_t value, int arg, int width) {
  GridRun& L = *g_launch;
  Fiber* f = g_cur;
  const uintptr_t pc = reinterpret_cast<uintptr_t>(__builtin_return_address(0));
  const uint32_t lane = f->linear & 31;
  Warp& w = L.warps[f->linear >> 5];
  ++g_stats.collectives;
  const char* name = coll_name(kind);
  if (!(mask >> lane & 1u)) {
    fail(fmt("%s calls %s with mask 0x%08x, which does not name its own lane %u",
             thread_name(cur_gid()).c_str(), name, mask, lane),
         pc);
  }
  if (mask & ~w.exists) {
    fail(fmt("%s: mask 0x%08x names lanes that do not exist (block of %u threads)", name, mask,
             L.nthreads),
         pc);
  }
  if (mask & w.exited) {
    fail(fmt("%s by %s: lanes 0x%08x of mask 0x%08x have exited", name,
             thread_name(cur_gid()).c_str(), mask & w.exited, mask),
         pc);
  }
  if (width < 1 || width > 32 || (width & (width - 1)) != 0) {
    fail(fmt("%s with width %d (must be a power of two up to 32)", name, width), pc);
  }
  if (w.arrived == 0) {
    w.kind = kind;
    w.mask = mask;
    w.width = width;
  } else if (w.kind != kind || w.mask != mask || w.width != width) {
    fail(fmt("lanes of one warp disagree: %s calls %s with mask 0x%08x while lanes 0x%08x wait "
             "in %s with mask 0x%08x",
             thread_name(cur_gid()).c_str(), name, mask, w.arrived,
             coll_name(w.kind), w.mask),
         pc);
  }
  w.value[lane] = value;
  w.arg[lane] = arg;
  w.arrived |= 1u << lane;
  if (w.arrived != mask) {
    f->state = State::AtWarp;
    yield_to_scheduler();
    return f->result;
  }
  // Every lane is here: compute each lane's result and release the others.
  unsigned votes = 0;
  for (int l = 0; l < 32; ++l) {
    if ((mask >> l & 1u) && w.value[l] != 0) votes |= 1u << l;
  }
  const uint32_t base_linear = f->linear & ~31u;
  for (int l = 0; l < 32; ++l) {
    if (!(mask >> l & 1u)) continue;
    const int seg = l & ~(width - 1);
    int src = l;
    switch (kind) {
      case Coll::Shfl: src = seg + (w.arg[l] & (width - 1)); break;
      case Coll::ShflUp: src = l - w.arg[l] >= seg ? l - w.arg[l] : l; break;
      case Coll::ShflDown: src = l + w.arg[l] < seg + width ? l + w.arg[l] : l; break;
      case Coll::ShflXor: {
        const int s = l ^ w.arg[l];
        src = (s & ~(width - 1)) == seg ? s : l;
        break;
      }
      default: break;
    }
    if (!(mask >> src & 1u)) {
      fail(fmt("%s: lane %d reads lane %d, which is not in mask 0x%08x (undefined value)", name,
               l, src, mask),
           pc);
    }
    uint64_t r = 0;
    switch (kind) {
      case Coll::Ballot: r = votes; break;
      case Coll::Any: r = votes != 0; break;
      case Coll::All: r = votes == mask; break;
      case Coll::SyncWarp: r = 0; break;
      default: r = w.value[src]; break;
    }
    Fiber& o = L.fibers[base_linear + l];
    o.result = r;
    if (o.state == State::AtWarp) o.state = State::Ready;
  }
  w.arrived = 0;
  return f->result;
}

void syncwarp(unsigned mask) { warp_collective(Coll::SyncWarp, mask, 0, 0, 32); }

unsigned active_mask() {
  const Warp& w = g_launch->warps[g_cur->linear >> 5];
  return w.exists & ~w.exited;
}

int device_attribute(int attr, int* value) {
  switch (attr) {
    case cudaDevAttrMultiProcessorCount: *value = g_dev.sms; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = g_dev.smem_optin; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = g_dev.smem_default; return cudaSuccess;
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; return cudaSuccess;
    case cudaDevAttrWarpSize: *value = 32; return cudaSuccess;
  }
  return cudaErrorInvalidValue;
}

int func_set_max_dynamic_smem(const void* kernel, int bytes) {
  if (bytes < 0 || bytes > g_dev.smem_optin) return cudaErrorInvalidValue;
  g_max_dyn_smem[kernel] = bytes;
  return cudaSuccess;
}

cudaError_t take_last_error() {
  const cudaError_t e = g_last_error;
  g_last_error = cudaSuccess;
  return e;
}

const char* error_name(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
  }
  return "cudaErrorUnknown";
}

const char* error_string(cudaError_t e) {
  return e == cudaErrorLaunchFailure ? "the emulation's checker stopped the kernel (see its report)"
                                     : error_name(e);
}

int run_grid(const void* kernel, dim3 grid, dim3 block, size_t smem_bytes, Entry entry,
             void* ctx, const void* args, size_t args_size) {
  const uint64_t nthreads = uint64_t(block.x) * block.y * block.z;
  const uint64_t nblocks = uint64_t(grid.x) * grid.y * grid.z;
  auto launch_error = [&](cudaError_t e, const std::string& why) {
    g_last_error = e;
    if (g_report.empty()) g_report = "CUDA emulation: launch rejected: " + why;
    return int(e);
  };
  if (nthreads == 0 || nthreads > 1024 || block.z > 64 || nblocks == 0 || grid.y > 65535 ||
      grid.z > 65535) {
    return launch_error(cudaErrorInvalidConfiguration,
                        fmt("grid (%u,%u,%u), block (%u,%u,%u)", grid.x, grid.y, grid.z, block.x,
                            block.y, block.z));
  }
  if (smem_bytes > size_t(g_dev.smem_default)) {
    auto it = g_max_dyn_smem.find(kernel);
    const size_t allowed = it == g_max_dyn_smem.end() ? size_t(g_dev.smem_default) : it->second;
    if (smem_bytes > allowed) {
      return launch_error(cudaErrorInvalidValue,
                          fmt("%zu bytes of dynamic shared memory, %zu allowed for this kernel "
                              "(cudaFuncAttributeMaxDynamicSharedMemorySize)",
                              smem_bytes, allowed));
    }
  }
  ++g_stats.launches;
  g_last_launch[0] = grid.x;
  g_last_launch[1] = block.x;
  g_last_launch[2] = static_cast<long long>(smem_bytes);
  GridRun L{};
  L.kernel = kernel;
  L.grid = grid;
  L.block = block;
  L.smem_bytes = smem_bytes;
  L.entry = entry;
  L.ctx = ctx;
  L.args_lo = reinterpret_cast<uintptr_t>(args);
  L.args_hi = L.args_lo + args_size;
  L.nthreads = static_cast<uint32_t>(nthreads);
  L.lib_base = reinterpret_cast<uintptr_t>(kernel) -
               code_offset(reinterpret_cast<uintptr_t>(kernel), nullptr);
  g_launched.insert(reinterpret_cast<uintptr_t>(kernel) - L.lib_base);
  L.fibers.resize(nthreads);
  L.warps.resize((nthreads + 31) / 32);
  for (uint32_t w = 0; w < L.warps.size(); ++w) {
    const uint32_t n = std::min<uint32_t>(32, L.nthreads - 32 * w);
    L.warps[w].exists = n == 32 ? 0xffffffffu : (1u << n) - 1u;
  }
  // Fiber stacks, each above a guard page.
  const size_t page = size_t(sysconf(_SC_PAGESIZE)), slot = kStack + page;
  void* stacks = mmap(nullptr, slot * nthreads, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (stacks == MAP_FAILED) return launch_error(cudaErrorLaunchFailure, "no memory for stacks");
  L.stacks_lo = reinterpret_cast<uintptr_t>(stacks);
  L.stacks_hi = L.stacks_lo + slot * nthreads;
  for (uint32_t t = 0; t < nthreads; ++t) {
    Fiber& f = L.fibers[t];
    mprotect(reinterpret_cast<char*>(stacks) + t * slot, page, PROT_NONE);
    f.stack_lo = L.stacks_lo + t * slot + page;
    f.linear = t;
    f.tid = dim3(t % block.x, t / block.x % block.y, t / (block.x * block.y));
  }
  // Shared memory: the dynamic bytes and a slack past them, and the static (TLS) part.
  L.smem = static_cast<unsigned char*>(std::aligned_alloc(16, (smem_bytes + kSmemSlack + 15) / 16 * 16));
  L.smem_lo = reinterpret_cast<uintptr_t>(L.smem);
  fastsnn_emu_tls_anchor = 1;
  dl_iterate_phdr(tls_callback, &L);
  L.smem_shadow.resize((smem_bytes + 3) / 4 + (L.tls_hi - L.tls_lo + 3) / 4);
  // Shadows of the writable buffers, for the global race check.
  std::sort(g_buffers.begin(), g_buffers.end(),
            [](const Buffer& a, const Buffer& b) { return a.lo < b.lo; });
  for (Buffer& b : g_buffers) {
    if (!b.writable || b.hi == b.lo) continue;
    b.shadow_bytes = ((b.hi - b.lo + 3) / 4) * sizeof(Shadow);
    void* m = mmap(nullptr, b.shadow_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    b.shadow = m == MAP_FAILED ? nullptr : static_cast<Shadow*>(m);
  }

  g_pending.clear();
  g_launch = &L;
  for (uint64_t b = 0; b < nblocks && !L.abort; ++b) {
    L.block_linear = b;
    L.bid = dim3(unsigned(b % grid.x), unsigned(b / grid.x % grid.y),
                 unsigned(b / (uint64_t(grid.x) * grid.y)));
    run_block(L);
  }
  g_launch = nullptr;

  for (Buffer& b : g_buffers) {
    if (b.shadow != nullptr) munmap(b.shadow, b.shadow_bytes);
    b.shadow = nullptr;
  }
  std::free(L.smem);
  munmap(stacks, slot * nthreads);
  if (L.abort) {
    g_last_error = cudaErrorLaunchFailure;
    return cudaErrorLaunchFailure;
  }
  return cudaSuccess;
}

}  // namespace fastsnn_emu

// ---- C interface for tests/cuda_emu.py -----------------------------------------------------

extern "C" {

void emu_set_device(int sms, int smem_optin) {
  fastsnn_emu::g_dev.sms = sms;
  fastsnn_emu::g_dev.smem_optin = smem_optin;
  fastsnn_emu::g_max_dyn_smem.clear();
}

void emu_register_buffer(const char* name, const void* ptr, size_t bytes, int writable) {
  const auto lo = reinterpret_cast<uintptr_t>(ptr);
  fastsnn_emu::g_buffers.push_back({name, lo, lo + bytes, writable != 0});
}

void emu_clear_buffers() { fastsnn_emu::g_buffers.clear(); }

// The first finding since the last call ("" if none), then cleared.
const char* emu_take_report() {
  static std::string out;
  out = fastsnn_emu::g_report;
  fastsnn_emu::g_report.clear();
  return out.c_str();
}

// launches, blocks, threads, checked accesses, barriers, warp collectives
void emu_stats(long long* out) {
  const auto& s = fastsnn_emu::g_stats;
  out[0] = s.launches;
  out[1] = s.blocks;
  out[2] = s.threads;
  out[3] = s.accesses;
  out[4] = s.barriers;
  out[5] = s.collectives;
}

// The library offsets of the kernels launched so far (at most max of them); returns how many.
int emu_launched_kernels(long long* out, int max) {
  int n = 0;
  for (uintptr_t off : fastsnn_emu::g_launched) {
    if (n < max) out[n] = static_cast<long long>(off);
    ++n;
  }
  return n;
}

// grid.x, block.x and dynamic shared-memory bytes of the last launch
void emu_last_launch(long long* out) {
  for (int i = 0; i < 3; ++i) out[i] = fastsnn_emu::g_last_launch[i];
}

}  // extern "C"

// ---- The instrumentation's entry points (gcc -fsanitize=thread) ----------------------------

#define FASTSNN_EMU_PC reinterpret_cast<uintptr_t>(__builtin_return_address(0))
#define FASTSNN_EMU_RW(n)                                                                    \
  void __tsan_read##n(void* a) {                                                             \
    fastsnn_emu::on_access(reinterpret_cast<uintptr_t>(a), n, false, FASTSNN_EMU_PC);        \
  }                                                                                          \
  void __tsan_write##n(void* a) {                                                            \
    fastsnn_emu::on_access(reinterpret_cast<uintptr_t>(a), n, true, FASTSNN_EMU_PC);         \
  }                                                                                          \
  void __tsan_unaligned_read##n(void* a) {                                                   \
    fastsnn_emu::on_access(reinterpret_cast<uintptr_t>(a), n, false, FASTSNN_EMU_PC);        \
  }                                                                                          \
  void __tsan_unaligned_write##n(void* a) {                                                  \
    fastsnn_emu::on_access(reinterpret_cast<uintptr_t>(a), n, true, FASTSNN_EMU_PC);         \
  }                                                                                          \
  void __tsan_volatile_read##n(void* a) {                                                    \
    fastsnn_emu::on_access(reinterpret_cast<uintptr_t>(a), n, false, FASTSNN_EMU_PC);        \
  }                                                                                          \
  void __tsan_volatile_write##n(void* a) {                                                   \
    fastsnn_emu::on_access(reinterpret_cast<uintptr_t>(a), n, true, FASTSNN_EMU_PC);         \
  }

extern "C" {
FASTSNN_EMU_RW(1)
FASTSNN_EMU_RW(2)
FASTSNN_EMU_RW(4)
FASTSNN_EMU_RW(8)
FASTSNN_EMU_RW(16)
void __tsan_read_range(void* a, unsigned long n) {
  fastsnn_emu::on_access(reinterpret_cast<uintptr_t>(a), n, false, FASTSNN_EMU_PC);
}
void __tsan_write_range(void* a, unsigned long n) {
  fastsnn_emu::on_access(reinterpret_cast<uintptr_t>(a), n, true, FASTSNN_EMU_PC);
}
void __tsan_func_entry(void*) {}
void __tsan_func_exit() {}
void __tsan_init() {}
void __tsan_vptr_update(void*, void*) {}
void __tsan_vptr_read(void*) {}
}
