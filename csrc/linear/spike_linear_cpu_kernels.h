// The CPU spike_linear kernel bodies, compiled once per instruction set like the neuron
// kernels (cpu_isa.h). y = x @ wᵀ where most entries of x are zero (spikes): a row of y is the
// sum of the rows of wᵀ picked by the nonzero entries of the row of x, each scaled by that
// entry, so the cost is ∝ nonzeros × M instead of K × M. Backward: dL/dw gathers the same way
// (dwᵀ[j, :] += x[r, j] · gy[r, :] for every nonzero x[r, j]) into a zeroed partial per row
// range. dL/dx = gy @ w is dense (gy is): a register-blocked loop for the few outputs of a
// readout, BLAS (at::mm in the host) beyond. Sums run in ascending j or m with plain multiply
// and add (no FMA): the AVX2 and baseline builds agree bitwise.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../common/cpu_chunks.h"

namespace fastsnn {
namespace FASTSNN_CPU_ISA {

// fn(j) for every j < n with x[j] != 0 (NaN counts as nonzero), in ascending j.
template <typename T, typename F>
inline void for_each_nonzero(const T* x, int64_t n, F&& fn) {
  int64_t j0 = 0;
#if defined(FASTSNN_CPU_FMA)
  if constexpr (std::is_same_v<T, float>) {
    // 32 entries per test: with sparse spikes most groups are all zero.
    const __m256 zero = _mm256_setzero_ps();
    auto mask8 = [&](int64_t j) {
      return static_cast<uint32_t>(
          _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + j), zero, _CMP_NEQ_UQ)));
    };
    for (; j0 + 32 <= n; j0 += 32) {
      uint32_t bits = mask8(j0) | (mask8(j0 + 8) << 8) | (mask8(j0 + 16) << 16) |
                      (mask8(j0 + 24) << 24);
      for_each_set_bit(bits, j0, fn);
    }
    for (; j0 + 8 <= n; j0 += 8) for_each_set_bit(mask8(j0), j0, fn);
  } else {
    const __m256d zero = _mm256_setzero_pd();
    for (; j0 + 4 <= n; j0 += 4) {
      const auto bits = static_cast<uint32_t>(
          _mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(x + j0), zero, _CMP_NEQ_UQ)));
      for_each_set_bit(bits, j0, fn);
    }
  }
#endif
  for (int64_t j = j0; j < n; ++j) {
    if (x[j] != T(0)) fn(j);  // true for NaN too
  }
}

// dst[0:n) += a * src[0:n)
template <typename T>
inline void axpy_row(T* __restrict__ dst, T a, const T* __restrict__ src, int64_t n) {
#pragma GCC ivdep
  for (int64_t m = 0; m < n; ++m) dst[m] += a * src[m];
}

#if defined(FASTSNN_CPU_FMA)
// The forward for a readout's few outputs (float, M <= 16): the row's M sums stay in two
// registers while its nonzeros stream past, where axpy_row read and wrote the output row
// once per nonzero. Same products and sums in the same order: the same bits.
inline void spike_linear_fwd_small_f32(const SpikeLinearParams& p, int64_t begin, int64_t end) {
  const float* x = static_cast<const float*>(p.x);
  const float* wt = static_cast<const float*>(p.wt);
  float* y = static_cast<float*>(p.y);
  const int64_t K = p.K, M = p.M;
  const LaneMasks16 mk(M);
  alignas(32) float out[16];
  for (int64_t r = begin; r < end; ++r) {
    const float* xr = x + r * p.x_sr;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for_each_nonzero(xr, K, [&](int64_t j) {
      const __m256 a = _mm256_set1_ps(xr[j]);
      const float* w = wt + j * M;
      acc0 = _mm256_add_ps(acc0, _mm256_mul_ps(a, _mm256_maskload_ps(w, mk.m0)));
      if (M > 8) acc1 = _mm256_add_ps(acc1, _mm256_mul_ps(a, _mm256_maskload_ps(w + 8, mk.m1)));
    });
    _mm256_store_ps(out, acc0);
    _mm256_store_ps(out + 8, acc1);
    std::memcpy(y + r * M, out, static_cast<size_t>(M) * sizeof(float));
  }
}
#endif

template <typename T>
void spike_linear_fwd_kernel(const SpikeLinearParams& p, int64_t begin, int64_t end) {
#if defined(FASTSNN_CPU_FMA)
  if constexpr (std::is_same_v<T, float>) {
    if (p.M <= 16) return spike_linear_fwd_small_f32(p, begin, end);
  }
#endif
  const T* x = static_cast<const T*>(p.x);
  const T* wt = static_cast<const T*>(p.wt);
  T* y = static_cast<T*>(p.y);
  const int64_t K = p.K, M = p.M;
  for (int64_t r = begin; r < end; ++r) {
    const T* xr = x + r * p.x_sr;
    T* yr = y + r * M;
    std::fill_n(yr, M, T(0));
    for_each_nonzero(xr, K, [&](int64_t j) { axpy_row(yr, xr[j], wt + j * M, M); });
  }
}

// gx[r, :] = Σ_m gy[r, m] · w[m, :] for a small M (the host sends large M to BLAS): 64
// columns of the row at a time stay in registers (eight independent vector sums) while m
// walks the weight rows.
template <typename T, int64_t C>
inline void gx_chunk(const T* __restrict__ g, const T* __restrict__ w, int64_t K, int64_t M,
                     T* __restrict__ out) {
  T acc[C];
#pragma GCC unroll 64
  for (int64_t i = 0; i < C; ++i) acc[i] = g[0] * w[i];
  for (int64_t m = 1; m < M; ++m) {
    const T a = g[m];
    const T* wr = w + m * K;
#pragma GCC unroll 64
    for (int64_t i = 0; i < C; ++i) acc[i] += a * wr[i];
  }
#pragma GCC unroll 64
  for (int64_t i = 0; i < C; ++i) out[i] = acc[i];
}

template <typename T>
void spike_linear_gx_kernel(const SpikeLinearParams& p, int64_t begin, int64_t end) {
  constexpr int64_t C = 64;
  const T* gy = static_cast<const T*>(p.gy);
  const T* w = static_cast<const T*>(p.w);
  T* gx = static_cast<T*>(p.gx);
  const int64_t K = p.K, M = p.M;
  for (int64_t r = begin; r < end; ++r) {
    const T* g = gy + r * M;
    T* out = gx + r * K;
    for_each_column_chunk<C>(K, [&]<int64_t W>(int64_t c0) {
      gx_chunk<T, W>(g, w + c0, K, M, out + c0);
    });
  }
}

#if defined(FASTSNN_CPU_FMA)
// dL/dw for a readout's few outputs (float, M <= 16): the rows of the gradient are kept 16
// wide in a local buffer, so each nonzero updates its row with two whole-vector
// read-modify-writes (a neuron that fires in consecutive rows forwards its row from store to
// load; a masked store does not forward), and the buffer is added into gwt at the end. The
// buffer starts at zero and gwt is zero, so the sums and their order are those of axpy_row.
inline void spike_linear_gwt_small_f32(const SpikeLinearParams& p, int64_t begin, int64_t end,
                                       float* gwt) {
  const float* x = static_cast<const float*>(p.x);
  const float* gy = static_cast<const float*>(p.gy);
  const int64_t K = p.K, M = p.M;
  const LaneMasks16 mk(M);
  AlignedRows<float> wide(K, 16);  // aligned rows of 16 floats, zero
  float* P = wide.data();
  for (int64_t r = begin; r < end; ++r) {
    const float* xr = x + r * p.x_sr;
    const float* gr = gy + r * M;
    __m256 g0 = _mm256_setzero_ps(), g1 = _mm256_setzero_ps();
    bool loaded = false;
    for_each_nonzero(xr, K, [&](int64_t j) {
      if (!loaded) {
        g0 = _mm256_maskload_ps(gr, mk.m0);
        g1 = _mm256_maskload_ps(gr + 8, mk.m1);
        loaded = true;
      }
      const __m256 a = _mm256_set1_ps(xr[j]);
      float* q = P + j * 16;
      _mm256_store_ps(q, _mm256_add_ps(_mm256_load_ps(q), _mm256_mul_ps(a, g0)));
      _mm256_store_ps(q + 8, _mm256_add_ps(_mm256_load_ps(q + 8), _mm256_mul_ps(a, g1)));
    });
  }
  for (int64_t k = 0; k < K; ++k) {
    for (int64_t m = 0; m < M; ++m) gwt[k * M + m] += P[k * 16 + m];
  }
}
#endif

// gwt [K, M] (zeroed by the caller) += Σ_r x[r, :]ᵀ gy[r, :] over rows [begin, end).
template <typename T>
void spike_linear_gwt_kernel(const SpikeLinearParams& p, int64_t begin, int64_t end, T* gwt) {
#if defined(FASTSNN_CPU_FMA)
  if constexpr (std::is_same_v<T, float>) {
    if (p.M <= 16) return spike_linear_gwt_small_f32(p, begin, end, gwt);
  }
#endif
  const T* x = static_cast<const T*>(p.x);
  const T* gy = static_cast<const T*>(p.gy);
  const int64_t K = p.K, M = p.M;
  for (int64_t r = begin; r < end; ++r) {
    const T* xr = x + r * p.x_sr;
    const T* gyr = gy + r * M;
    for_each_nonzero(xr, K, [&](int64_t j) { axpy_row(gwt + j * M, xr[j], gyr, M); });
  }
}

template <typename F>
inline void dispatch_f32_f64(IoType io, F&& f) {
  if (io == IoType::F64) return f(double{});
  return f(float{});
}

void spike_linear_fwd_rows(const SpikeLinearParams& p, IoType io, int64_t b, int64_t e) {
  dispatch_f32_f64(io, [&](auto v) { spike_linear_fwd_kernel<decltype(v)>(p, b, e); });
}

void spike_linear_gx_rows(const SpikeLinearParams& p, IoType io, int64_t b, int64_t e) {
  dispatch_f32_f64(io, [&](auto v) { spike_linear_gx_kernel<decltype(v)>(p, b, e); });
}

void spike_linear_gwt_rows(const SpikeLinearParams& p, IoType io, int64_t b, int64_t e,
                           void* gwt) {
  dispatch_f32_f64(io, [&](auto v) {
    using T = decltype(v);
    spike_linear_gwt_kernel<T>(p, b, e, static_cast<T*>(gwt));
  });
}

}  // namespace FASTSNN_CPU_ISA
}  // namespace fastsnn
