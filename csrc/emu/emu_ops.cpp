// C entry points of the emulated CUDA launchers for tests/cuda_emu.py: each takes a Params block
// of common/params.h (filled by Python from the layout below) and calls the real launcher of
// lif_cuda.cu / li_cuda.cu / rlif_cuda.cu, compiled for the host with cuda_emu.h. Returns 0, or
// 1 with the launcher's exception message in err (the checker's finding: emu_take_report).
#include <cstddef>
#include <cstdio>
#include <exception>
#include <mutex>
#include <sstream>
#include <string>
#include <type_traits>

#include "../common/launch.h"

namespace {

std::mutex g_mutex;  // one emulated launch at a time: the runtime's state is global

template <typename F>
int guarded(F&& f, char* err, size_t errlen) {
  std::lock_guard<std::mutex> lock(g_mutex);
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    std::snprintf(err, errlen, "%s", e.what());
  } catch (...) {
    std::snprintf(err, errlen, "unknown exception");
  }
  return 1;
}

template <typename T>
const char* kind() {
  if (std::is_same<T, bool>::value) return "bool";
  if (std::is_same<T, double>::value) return "double";
  if (std::is_pointer<T>::value) return "ptr";
  if (std::is_integral<T>::value) return sizeof(T) == 8 ? "i64" : "i32";
  return "struct";
}

}  // namespace

using namespace fastsnn;

extern "C" {

// "STRUCT SIZE" lines, each followed by "  FIELD OFFSET KIND" lines.
const char* emu_layout() {
  static std::string text;
  std::ostringstream o;
#define S(T) o << #T << " " << sizeof(T) << "\n";
#define F(T, f) \
  o << "  " << #f << " " << offsetof(T, f) << " " << kind<decltype(T::f)>() << "\n";
  S(LifFwdParams) F(LifFwdParams, B) F(LifFwdParams, T) F(LifFwdParams, N) F(LifFwdParams, x)
  F(LifFwdParams, x_sb) F(LifFwdParams, x_st) F(LifFwdParams, s) F(LifFwdParams, s_sb)
  F(LifFwdParams, s_st) F(LifFwdParams, alpha) F(LifFwdParams, beta) F(LifFwdParams, thr)
  F(LifFwdParams, i0) F(LifFwdParams, u0) F(LifFwdParams, iT) F(LifFwdParams, uT)
  F(LifFwdParams, u_saved) F(LifFwdParams, i_saved) F(LifFwdParams, reset)
  F(LifFwdParams, normalize_input)
  S(LifBwdParams) F(LifBwdParams, B) F(LifBwdParams, T) F(LifBwdParams, N) F(LifBwdParams, gs)
  F(LifBwdParams, gs_sb) F(LifBwdParams, gs_st) F(LifBwdParams, gx) F(LifBwdParams, gx_sb)
  F(LifBwdParams, gx_st) F(LifBwdParams, giT) F(LifBwdParams, guT) F(LifBwdParams, u_saved)
  F(LifBwdParams, i_saved) F(LifBwdParams, i0) F(LifBwdParams, u0) F(LifBwdParams, alpha)
  F(LifBwdParams, beta) F(LifBwdParams, thr) F(LifBwdParams, gi0) F(LifBwdParams, gu0)
  F(LifBwdParams, galpha) F(LifBwdParams, gbeta) F(LifBwdParams, gthr) F(LifBwdParams, reset)
  F(LifBwdParams, surrogate) F(LifBwdParams, detach_reset) F(LifBwdParams, normalize_input)
  F(LifBwdParams, scale)
  S(RlifFwdParams) F(RlifFwdParams, lif) F(RlifFwdParams, w) F(RlifFwdParams, dense_product)
  F(RlifFwdParams, w_finite)
  S(RlifBwdParams) F(RlifBwdParams, lif) F(RlifBwdParams, wt) F(RlifBwdParams, detach_recurrent)
  F(RlifBwdParams, gw) F(RlifBwdParams, gi_acc) F(RlifBwdParams, workspace)
#undef S
#undef F
  text = o.str();
  return text.c_str();
}

int emu_lif_fwd(const void* p, int io, char* err, size_t n) {
  return guarded([&] { lif_fwd_cuda(*static_cast<const LifFwdParams*>(p), IoType(io), nullptr); },
                 err, n);
}
int emu_lif_bwd(const void* p, int io, char* err, size_t n) {
  return guarded([&] { lif_bwd_cuda(*static_cast<const LifBwdParams*>(p), IoType(io), nullptr); },
                 err, n);
}
int emu_li_fwd(const void* p, int io, char* err, size_t n) {
  return guarded([&] { li_fwd_cuda(*static_cast<const LifFwdParams*>(p), IoType(io), nullptr); },
                 err, n);
}
int emu_li_bwd(const void* p, int io, char* err, size_t n) {
  return guarded([&] { li_bwd_cuda(*static_cast<const LifBwdParams*>(p), IoType(io), nullptr); },
                 err, n);
}
int emu_rlif_fwd(const void* p, int io, char* err, size_t n) {
  return guarded(
      [&] { rlif_fwd_cuda(*static_cast<const RlifFwdParams*>(p), IoType(io), nullptr); }, err, n);
}
int emu_rlif_bwd(const void* p, int io, char* err, size_t n) {
  return guarded(
      [&] { rlif_bwd_cuda(*static_cast<const RlifBwdParams*>(p), IoType(io), nullptr); }, err, n);
}
// Bytes of workspace rlif_bwd_cuda needs, or -1 with the message in err.
long long emu_rlif_bwd_workspace(const void* p, int io, char* err, size_t n) {
  long long bytes = -1;
  guarded([&] { bytes = rlif_bwd_cuda_workspace(*static_cast<const RlifBwdParams*>(p), IoType(io)); },
          err, n);
  return bytes;
}

}  // extern "C"
