// The CPU rlif kernel bodies, compiled once per instruction set like lif_cpu_kernels.h. A work
// item walks time over a tile of up to `tile` whole batch rows (the recurrence couples all N
// neurons of a row, so a row is never split); cpu_launch.cpp hands each thread a contiguous run
// of tiles, so threads never synchronise inside the scan. Per-step math: lif_math.h.
//
// Forward, each step: R_t = S_{t-1} @ V for the tile's rows, then the lif update with R_t added
// to the current. S is 0/1, so the product is a sum of the rows of V of the neurons that spiked
// (a gather: cost ∝ spikes × N); non-finite V forms it as a dense tile product instead (see RlifFwdParams::dense_product).
// Backward, each step in reverse: rec_t = gI_{t+1} @ Vᵀ for the tile (dense: gI is dense) joins
// dL/dS_t, then the lif reverse step; dV += S_{t-1}ᵀ gI_t as a gather over the spikes into a
// per-thread partial that the launcher sums once after the scan (plus 0 * gI_t for the other
// neurons where gI_t is not finite, as the dense product has it).
// Non-finite V: the host entry sets dense_product, since the gather skips 0 * inf = NaN.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

#include "../common/cpu_chunks.h"

namespace fastsnn {
namespace FASTSNN_CPU_ISA {

#if defined(FASTSNN_CPU_FMA)
// One panel of tile_gemm: C[:, j0:j0+W) for all M rows, W = 16 (two vectors) or 8 (one, for
// a last panel of at most 8 columns); kMasked for the last, narrower panel (loads and stores
// through lane masks, so nothing past column N is touched).
template <bool kMasked, int W>
inline void gemm_panel_f32(int64_t M, int64_t K, const float* A, int64_t lda, const float* Bm,
                           int64_t ldb, float* C, int64_t ldc, int64_t j0, int64_t w) {
  static_assert(W == 8 || W == 16, "panel width");
  constexpr bool kTwo = W == 16;
  const LaneMasks16 mk(w);
  const __m256i m0 = mk.m0, m1 = mk.m1;
  auto load = [&](const float* ptr, __m256i m) {
    if constexpr (kMasked) return _mm256_maskload_ps(ptr, m);
    return _mm256_loadu_ps(ptr);
  };
  auto store = [&](float* ptr, __m256i m, __m256 v) {
    if constexpr (kMasked) {
      _mm256_maskstore_ps(ptr, m, v);
    } else {
      _mm256_storeu_ps(ptr, v);
    }
  };
  int64_t r = 0;
  if constexpr (!kTwo) {
    // One vector of columns: 8 rows at a time, so 8 independent sums keep both FMA pipes busy
    // (4 rows gave 4 chains of the FMA latency: the narrow last panel at N = 100, 4 of 100
    // columns, took as long as a 16-column one).
    for (; r + 8 <= M; r += 8) {
      const float* a = A + r * lda;
      __m256 c[8];
      for (int q = 0; q < 8; ++q) c[q] = _mm256_setzero_ps();
      const float* bp = Bm + j0;
      for (int64_t k = 0; k < K; ++k, bp += ldb) {
        const __m256 b0 = load(bp, m0);
#pragma GCC unroll 8
        for (int q = 0; q < 8; ++q) {
          c[q] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + q * lda + k), b0, c[q]);
        }
      }
#pragma GCC unroll 8
      for (int q = 0; q < 8; ++q) store(C + (r + q) * ldc + j0, m0, c[q]);
    }
  }
  for (; r + 4 <= M; r += 4) {
    const float* a0 = A + r * lda;
    const float* a1 = a0 + lda;
    const float* a2 = a1 + lda;
    const float* a3 = a2 + lda;
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    const float* bp = Bm + j0;
    for (int64_t k = 0; k < K; ++k, bp += ldb) {
      const __m256 b0 = load(bp, m0);
      const __m256 x0 = _mm256_broadcast_ss(a0 + k), x1 = _mm256_broadcast_ss(a1 + k);
      const __m256 x2 = _mm256_broadcast_ss(a2 + k), x3 = _mm256_broadcast_ss(a3 + k);
      c00 = _mm256_fmadd_ps(x0, b0, c00);
      c10 = _mm256_fmadd_ps(x1, b0, c10);
      c20 = _mm256_fmadd_ps(x2, b0, c20);
      c30 = _mm256_fmadd_ps(x3, b0, c30);
      if constexpr (kTwo) {
        const __m256 b1 = load(bp + 8, m1);
        c01 = _mm256_fmadd_ps(x0, b1, c01);
        c11 = _mm256_fmadd_ps(x1, b1, c11);
        c21 = _mm256_fmadd_ps(x2, b1, c21);
        c31 = _mm256_fmadd_ps(x3, b1, c31);
      }
    }
    float* c = C + r * ldc + j0;
    store(c, m0, c00);
    store(c + ldc, m0, c10);
    store(c + 2 * ldc, m0, c20);
    store(c + 3 * ldc, m0, c30);
    if constexpr (kTwo) {
      store(c + 8, m1, c01);
      store(c + ldc + 8, m1, c11);
      store(c + 2 * ldc + 8, m1, c21);
      store(c + 3 * ldc + 8, m1, c31);
    }
  }
  for (; r < M; ++r) {
    const float* a0 = A + r * lda;
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    const float* bp = Bm + j0;
    for (int64_t k = 0; k < K; ++k, bp += ldb) {
      const __m256 x = _mm256_broadcast_ss(a0 + k);
      c00 = _mm256_fmadd_ps(x, load(bp, m0), c00);
      if constexpr (kTwo) c01 = _mm256_fmadd_ps(x, load(bp + 8, m1), c01);
    }
    store(C + r * ldc + j0, m0, c00);
    if constexpr (kTwo) store(C + r * ldc + j0 + 8, m1, c01);
  }
}

// C[:, j0:j0+24) for all M rows: 4 rows × 3 vectors, 12 independent FMA chains per k, enough
// to keep both FMA pipes busy (a 16-column panel's 8 chains are not; see ops/rlif/README.md).
inline void gemm_panel24_f32(int64_t M, int64_t K, const float* A, int64_t lda,
                             const float* Bm, int64_t ldb, float* C, int64_t ldc, int64_t j0) {
  int64_t r = 0;
  for (; r + 4 <= M; r += 4) {
    const float* a0 = A + r * lda;
    __m256 c[4][3];
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      c[q][0] = _mm256_setzero_ps();
      c[q][1] = _mm256_setzero_ps();
      c[q][2] = _mm256_setzero_ps();
    }
    const float* bp = Bm + j0;
    for (int64_t k = 0; k < K; ++k, bp += ldb) {
      const __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8),
                   b2 = _mm256_loadu_ps(bp + 16);
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) {
        const __m256 x = _mm256_broadcast_ss(a0 + q * lda + k);
        c[q][0] = _mm256_fmadd_ps(x, b0, c[q][0]);
        c[q][1] = _mm256_fmadd_ps(x, b1, c[q][1]);
        c[q][2] = _mm256_fmadd_ps(x, b2, c[q][2]);
      }
    }
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      float* cr = C + (r + q) * ldc + j0;
      _mm256_storeu_ps(cr, c[q][0]);
      _mm256_storeu_ps(cr + 8, c[q][1]);
      _mm256_storeu_ps(cr + 16, c[q][2]);
    }
  }
  if (r < M) {  // the last rows: the 16- and 8-column panels' row loops
    gemm_panel_f32<false, 16>(M - r, K, A + r * lda, lda, Bm, ldb, C + r * ldc, ldc, j0, 16);
    gemm_panel_f32<false, 8>(M - r, K, A + r * lda, lda, Bm, ldb, C + r * ldc, ldc, j0 + 16, 8);
  }
}

// The same product with 16-lane AVX-512 vectors, for processors with two 512-bit FMA units
// (most Intel Xeons since Skylake-SP: twice the multiply-adds per cycle of AVX2; with one such
// unit, or on Zen 4, which splits them in halves, the rate is AVX2's: nothing gained or lost). Each C[r, j] is the same FMA chain over k = 0..K-1
// from zero as in the AVX2 panels, so the results are bitwise those of the AVX2 product.
// Compiled for AVX-512 by a function attribute inside this AVX2 unit; picked at run time
// (cpu_use_avx512). The attribute's functions are never inlined into AVX2 code.
#define FASTSNN_AVX512_FN __attribute__((target("avx2,fma,avx512f")))

// C[0:R, 0:16V) = A[0:R, 0:K) · Bm[0:K, 0:16V), the last vector's lanes through `last`
// (masked loads and stores: nothing outside them is read or written).
template <int R, int V>
FASTSNN_AVX512_FN inline void gemm_block512(int64_t K, const float* A, int64_t lda,
                                            const float* Bm, int64_t ldb, float* C, int64_t ldc,
                                            __mmask16 last) {
  __m512 c[R][V];
#pragma GCC unroll 8
  for (int q = 0; q < R; ++q) {
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) c[q][v] = _mm512_setzero_ps();
  }
  const float* bp = Bm;
  for (int64_t k = 0; k < K; ++k, bp += ldb) {
    __m512 b[V];
#pragma GCC unroll 4
    for (int v = 0; v + 1 < V; ++v) b[v] = _mm512_loadu_ps(bp + 16 * v);
    b[V - 1] = _mm512_maskz_loadu_ps(last, bp + 16 * (V - 1));
#pragma GCC unroll 8
    for (int q = 0; q < R; ++q) {
      const __m512 x = _mm512_set1_ps(A[q * lda + k]);
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) c[q][v] = _mm512_fmadd_ps(x, b[v], c[q][v]);
    }
  }
#pragma GCC unroll 8
  for (int q = 0; q < R; ++q) {
    float* cr = C + q * ldc;
#pragma GCC unroll 4
    for (int v = 0; v + 1 < V; ++v) _mm512_storeu_ps(cr + 16 * v, c[q][v]);
    _mm512_mask_storeu_ps(cr + 16 * (V - 1), last, c[q][V - 1]);
  }
}

// C[:, j0:j0+16V) for all M rows: 8 rows at a time (8V independent FMA chains; 24 accumulators
// and 3 vectors of Bm at V = 3 stay within the 32 registers), then 4, 2 and 1.
template <int V>
FASTSNN_AVX512_FN inline void gemm_panel512(int64_t M, int64_t K, const float* A, int64_t lda,
                                            const float* Bm, int64_t ldb, float* C, int64_t ldc,
                                            int64_t j0, __mmask16 last) {
  int64_t r = 0;
  for (; r + 8 <= M; r += 8) {
    gemm_block512<8, V>(K, A + r * lda, lda, Bm + j0, ldb, C + r * ldc + j0, ldc, last);
  }
  if (r + 4 <= M) {
    gemm_block512<4, V>(K, A + r * lda, lda, Bm + j0, ldb, C + r * ldc + j0, ldc, last);
    r += 4;
  }
  if (r + 2 <= M) {
    gemm_block512<2, V>(K, A + r * lda, lda, Bm + j0, ldb, C + r * ldc + j0, ldc, last);
    r += 2;
  }
  if (r < M) gemm_block512<1, V>(K, A + r * lda, lda, Bm + j0, ldb, C + r * ldc + j0, ldc, last);
}

// tile_gemm's float32 product with AVX-512: the row's nv = ceil(N / 16) vectors in panels of
// 3, the last panel's last vector masked. A rest of one vector is not left alone: 8 FMA chains
// of 8 rows × 1 vector are short of the two FMA pipes' 2 × 4-cycle latency, so the last four
// vectors go as two panels of 2 instead. At N = 100 (104 padded columns): 3 + 2 + 2 vectors,
// 7 vector FMAs per row and k against the AVX2 panels' 13.
FASTSNN_AVX512_FN __attribute__((noinline)) inline void tile_gemm_f32_avx512(
    int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* Bm, int64_t ldb,
    float* C, int64_t ldc) {
  const int64_t nv = (N + 15) / 16;
  const auto mask = [](int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); };
  const __mmask16 last = mask(N - 16 * (nv - 1));  // lanes of the last vector
  int64_t v = 0;  // vectors done
  const int64_t threes = nv % 3 == 1 && nv >= 4 ? nv / 3 - 1 : nv / 3;
  for (; v < threes * 3; v += 3) {
    gemm_panel512<3>(M, K, A, lda, Bm, ldb, C, ldc, 16 * v, v + 3 == nv ? last : 0xFFFF);
  }
  while (nv - v >= 2) {
    gemm_panel512<2>(M, K, A, lda, Bm, ldb, C, ldc, 16 * v, v + 2 == nv ? last : 0xFFFF);
    v += 2;
  }
  if (v < nv) gemm_panel512<1>(M, K, A, lda, Bm, ldb, C, ldc, 16 * v, last);
}
#endif

// C[r, 0:N) = Σ_k A[r, k] · Bm[k, 0:N) for r < M: A [M, K] (row stride lda), Bm [K, N] (ldb),
// C [M, N] (ldc), C overwritten. The products of rlif are a tile of rows by N, so a
// register-tiled loop is enough: float32 panels of 4 rows × 24 columns with FMA in the AVX2
// build (narrower ones for the rest, the last masked), or of up to 8 rows × 48 columns where
// the processor has AVX-512 (tile_gemm_f32_avx512, bitwise the same results); a plain
// vectorised axpy loop otherwise (double, baseline build).
template <typename acc_t>
void tile_gemm(int64_t M, int64_t N, int64_t K, const acc_t* A, int64_t lda, const acc_t* Bm,
               int64_t ldb, acc_t* C, int64_t ldc) {
#if defined(FASTSNN_CPU_FMA)
  if constexpr (std::is_same_v<acc_t, float>) {
    if (cpu_use_avx512()) return tile_gemm_f32_avx512(M, N, K, A, lda, Bm, ldb, C, ldc);
    int64_t j0 = 0;
    for (; j0 + 24 <= N; j0 += 24) gemm_panel24_f32(M, K, A, lda, Bm, ldb, C, ldc, j0);
    for (; j0 + 16 <= N; j0 += 16) {
      gemm_panel_f32<false, 16>(M, K, A, lda, Bm, ldb, C, ldc, j0, 16);
    }
    if (j0 + 8 <= N) {
      gemm_panel_f32<false, 8>(M, K, A, lda, Bm, ldb, C, ldc, j0, 8);
      j0 += 8;
    }
    if (j0 < N) gemm_panel_f32<true, 8>(M, K, A, lda, Bm, ldb, C, ldc, j0, N - j0);
    return;
  }
#endif
  for (int64_t r = 0; r < M; ++r) {
    acc_t* __restrict__ c = C + r * ldc;
    for (int64_t j = 0; j < N; ++j) c[j] = acc_t(0);
    for (int64_t k = 0; k < K; ++k) {
      const acc_t a = A[r * lda + k];
      const acc_t* __restrict__ b = Bm + k * ldb;
#pragma GCC ivdep
      for (int64_t j = 0; j < N; ++j) c[j] += a * b[j];
    }
  }
}

// A tile walks several batch rows in lockstep, more concurrent streams than the hardware
// prefetcher follows; each row asks for its next step's data one step ahead. Into L2, not L1
// (prefetcht1): the backward's tile product streams Vᵀ (41.6 KB at N = 100) through the 32 KB
// L1 in between, and prefetches into L1 would evict it (measured: ops/rlif/README.md).
inline void prefetch_row(const void* ptr, int64_t bytes) {
  const char* c = static_cast<const char*>(ptr);
  for (int64_t o = 0; o < bytes; o += 64) __builtin_prefetch(c + o, 0, 2);
}

// dst[0:n) += src[0:n)
template <typename acc_t>
inline void add_row(acc_t* __restrict__ dst, const acc_t* __restrict__ src, int64_t n) {
#if defined(FASTSNN_CPU_FMA)
  if constexpr (std::is_same_v<acc_t, float>) {
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
      const __m256 a = _mm256_add_ps(_mm256_loadu_ps(dst + j), _mm256_loadu_ps(src + j));
      const __m256 b = _mm256_add_ps(_mm256_loadu_ps(dst + j + 8), _mm256_loadu_ps(src + j + 8));
      _mm256_storeu_ps(dst + j, a);
      _mm256_storeu_ps(dst + j + 8, b);
    }
    if (j + 8 <= n) {
      _mm256_storeu_ps(dst + j, _mm256_add_ps(_mm256_loadu_ps(dst + j), _mm256_loadu_ps(src + j)));
      j += 8;
    }
    for (; j < n; ++j) dst[j] += src[j];
    return;
  }
#endif
#pragma GCC ivdep
  for (int64_t j = 0; j < n; ++j) dst[j] += src[j];
}

// Internal rows are padded to a whole number of vectors and 64-byte aligned, so the neuron
// loops have no scalar remainder (the carries, U_t and U_{t-1}, dL/dS_t and dV's rows are
// padded; measured in ops/rlif/README.md). The user's rows (X, S, dL/dS, the saved U and I, dL/dX)
// keep their layout and pass through row buffers; spikes are found from U itself. Pad lanes
// hold zeros (alpha = beta = gamma = 0, threshold 1: they never spike) and never reach a
// real lane: the products run over the real k only, and only real columns are written out.
template <typename io_t, typename acc_t>
inline int64_t padded_width(int64_t n) {
  constexpr int64_t lanes = std::max<int64_t>(8, 32 / std::min(sizeof(io_t), sizeof(acc_t)));
  return (n + lanes - 1) / lanes * lanes;
}

#if defined(FASTSNN_CPU_FMA)
// Bit i set where heaviside(u[i], thr[i]) != 0 for the 8 float lanes: (u - thr) > 0, an
// ordered compare, so NaN never spikes (as heaviside). Every spike walk below builds on it.
inline uint32_t spike_bits8(__m256 u, __m256 thr) {
  const __m256 d = _mm256_sub_ps(u, thr);
  return static_cast<uint32_t>(
      _mm256_movemask_ps(_mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_GT_OQ)));
}
#endif

// fn(j) for every j < n with heaviside(u[j], thr[j]) != 0, in ascending j: the spikes S_t of a
// row, recomputed from its membrane U_t as the backward does. Reads nothing past u[n - 1].
template <typename acc_t, typename F>
inline void for_each_spike(const acc_t* u, const acc_t* thr, int64_t n, F&& fn) {
#if defined(FASTSNN_CPU_FMA)
  if constexpr (std::is_same_v<acc_t, float>) {
    auto mask8 = [&](int64_t j) {
      if (j + 8 <= n) return spike_bits8(_mm256_loadu_ps(u + j), _mm256_loadu_ps(thr + j));
      const __m256i m = LaneMasks16(n - j).m0;  // the last lanes: no read past the row
      return spike_bits8(_mm256_maskload_ps(u + j, m), _mm256_maskload_ps(thr + j, m));
    };
    // 32 lanes per walk over the set bits: with sparse spikes a walk per 8 lanes costs a
    // mispredicted loop exit each.
    for (int64_t j0 = 0; j0 < n; j0 += 32) {
      uint32_t bits = mask8(j0);
      if (j0 + 8 < n) bits |= mask8(j0 + 8) << 8;
      if (j0 + 16 < n) bits |= mask8(j0 + 16) << 16;
      if (j0 + 24 < n) bits |= mask8(j0 + 24) << 24;
      for_each_set_bit(bits, j0, fn);
    }
    return;
  }
#endif
  for (int64_t j = 0; j < n; ++j) {
    if (heaviside(u[j], thr[j]) != acc_t(0)) fn(j);
  }
}

#if defined(FASTSNN_CPU_FMA)
// For each 8-bit lane mask m: the positions of its set bits, ascending, one per byte (low byte
// first), and how many there are.
struct LanePositions {
  uint64_t packed[256];
  uint8_t count[256];
  constexpr LanePositions() : packed(), count() {
    for (int m = 0; m < 256; ++m) {
      int c = 0;
      for (int i = 0; i < 8; ++i) {
        if ((m >> i) & 1) packed[m] |= uint64_t(i) << (8 * c++);
      }
      count[m] = static_cast<uint8_t>(c);
    }
  }
};
inline constexpr LanePositions kLanePositions{};
#endif

// out[0:ns) = base + j for the j < n with heaviside(u[j], thr[j]) != 0, ascending; returns ns. n is
// a multiple of 8 (a padded row) and out has room for n + 8 entries. The float32 AVX2 build does it
// without a branch per spike: per 8 lanes one compare, a table lookup of the set lanes' positions
// and one 8-index store (the next store starts where the last one's valid indices end), where
// the bit walk of for_each_spike mispredicts its loop exits.
template <typename acc_t>
inline int64_t spike_indices(const acc_t* u, const acc_t* thr, int64_t n, int32_t* out,
                             int64_t base = 0) {
#if defined(FASTSNN_CPU_FMA)
  if constexpr (std::is_same_v<acc_t, float>) {
    int64_t ns = 0;
    for (int64_t j = 0; j < n; j += 8) {
      const uint32_t m = spike_bits8(_mm256_loadu_ps(u + j), _mm256_loadu_ps(thr + j));
      const __m128i pos = _mm_cvtsi64_si128(static_cast<long long>(kLanePositions.packed[m]));
      const __m256i idx = _mm256_add_epi32(_mm256_cvtepu8_epi32(pos),
                                           _mm256_set1_epi32(static_cast<int32_t>(base + j)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + ns), idx);
      ns += kLanePositions.count[m];
    }
    return ns;
  }
#endif
  int64_t ns = 0;
  for_each_spike(u, thr, n, [&](int64_t j) { out[ns++] = static_cast<int32_t>(base + j); });
  return ns;
}

// dst[c0:c0+C) = Σ_q src[rows[q] * ld + c0 : +C) over q < n, the sum held in registers (no
// store per row added). Rows in the order given; 0 when n == 0.
template <typename acc_t, int64_t C>
inline void gather_chunk(acc_t* __restrict__ dst, const acc_t* __restrict__ src, int64_t ld,
                         const int32_t* rows, int64_t n) {
  acc_t acc[C];
#pragma GCC unroll 32
  for (int64_t i = 0; i < C; ++i) acc[i] = acc_t(0);
  for (int64_t q = 0; q < n; ++q) {
    const acc_t* v = src + rows[q] * ld;
#pragma GCC unroll 32
    for (int64_t i = 0; i < C; ++i) acc[i] += v[i];
  }
#pragma GCC unroll 32
  for (int64_t i = 0; i < C; ++i) dst[i] = acc[i];
}

// dst[0:len) = Σ_q src[rows[q] * ld + 0:len): the forward's R_t for one batch row, summed over
// the neurons that spiked in ascending order. Each 32 columns stay in registers while the
// spiking rows stream past: one load per element added, no read-modify-write of dst per spike.
template <typename acc_t>
inline void gather_rows(acc_t* dst, const acc_t* src, int64_t ld, int64_t len,
                        const int32_t* rows, int64_t n) {
  for_each_column_chunk<32>(len, [&]<int64_t C>(int64_t c) {
    gather_chunk<acc_t, C>(dst + c, src + c, ld, rows, n);
  });
}

// The forward's R_t for rows of at most 128 lanes (N <= 128 in float32 with AVX2): the spike
// bits of U_{t-1} in two 64-bit words (one compare per 8 lanes), then rt = 0 and V's row j
// added to it for each set bit j, ascending: the same sums in the same order as gather_rows,
// so R_t is bitwise the same. With one or two spikes a row, gather_rows' loop over the spikes
// per 32-column chunk and the bit walk per 32 lanes cost a mispredicted loop exit each; here
// there are two walks and no chunk loops. Wider rows keep gather_rows, whose sums stay in
// registers instead of a read-modify-write of rt per spike.
template <typename acc_t>
constexpr bool has_short_row_walk() {
#if defined(FASTSNN_CPU_FMA)
  return std::is_same_v<acc_t, float>;
#else
  return false;
#endif
}

// Whether x[0:n) holds no inf and no NaN.
template <typename acc_t>
inline bool all_finite(const acc_t* x, int64_t n) {
  bool ok = true;
  for (int64_t j = 0; j < n; ++j) ok &= std::isfinite(x[j]);
  return ok;
}

// Dw.row(j)[0:n) += 0 * g[0:n) for the rows j < n not in the ascending list spiked[0:ns).
template <typename acc_t>
inline void add_zero_times(AlignedRows<acc_t>& Dw, const acc_t* g, int64_t n,
                           const int32_t* spiked, int64_t ns) {
  int64_t q = 0;
  for (int64_t j = 0; j < n; ++j) {
    if (q < ns && spiked[q] == j) {
      ++q;
      continue;
    }
    acc_t* d = Dw.row(j);
    for (int64_t c = 0; c < n; ++c) d[c] += acc_t(0) * g[c];
  }
}

// A row's lanes read in place from the caller's rows, [0, in_place_lanes(n)): n rounded down to
// a whole 8-lane vector. The rest of the padded row comes from a tail copy of tail_width lanes.
inline int64_t in_place_lanes(int64_t n) { return n / 8 * 8; }
inline int64_t tail_width(int64_t n, int64_t padded) {
  return std::max<int64_t>(padded - in_place_lanes(n), 8);
}

template <typename acc_t>
inline void recurrent_input_short(acc_t* rt, const AlignedRows<acc_t>& W, const acc_t* u,
                                  const acc_t* thr, int64_t n) {
#if defined(FASTSNN_CPU_FMA)
  if constexpr (std::is_same_v<acc_t, float>) {
    uint64_t w[2] = {0, 0};
    for (int64_t j = 0; j < n; j += 8) {  // n: a multiple of 8, at most 128
      const uint64_t m = spike_bits8(_mm256_loadu_ps(u + j), _mm256_loadu_ps(thr + j));
      w[j >> 6] |= m << (j & 63);
    }
    std::fill_n(rt, n, 0.0f);
    for (int h = 0; h < 2; ++h) {
      for (uint64_t b = w[h]; b != 0; b &= b - 1) {
        add_row(rt, W.row(64 * h + __builtin_ctzll(b)), n);
      }
    }
    return;
  }
#endif
  (void)rt, (void)W, (void)u, (void)thr, (void)n;
}

// Per-neuron constants of a call, padded to `width` >= N lanes (pad: zeros, threshold 1).
template <typename acc_t>
struct RlifConstRows {
  std::vector<acc_t> A, Be, G, Th;
  RlifConstRows(const LifFwdParams& p, int64_t width)
      : RlifConstRows(p.N, width, p.alpha, p.beta, p.thr, p.normalize_input) {}
  RlifConstRows(const LifBwdParams& p, int64_t width)
      : RlifConstRows(p.N, width, p.alpha, p.beta, p.thr, p.normalize_input) {}
  RlifConstRows(int64_t N, int64_t width, const void* alpha, const void* beta, const void* thr,
                bool normalize)
      : A(width, acc_t(0)), Be(width, acc_t(0)), G(width, acc_t(0)), Th(width, acc_t(1)) {
    for (int64_t j = 0; j < N; ++j) {
      A[j] = static_cast<const acc_t*>(alpha)[j];
      Be[j] = static_cast<const acc_t*>(beta)[j];
      G[j] = normalize ? acc_t(1) - Be[j] : acc_t(1);
      Th[j] = static_cast<const acc_t*>(thr)[j];
    }
  }
};

// src [rows, n] (row stride n) into a padded AlignedRows [rows, width] (pads stay zero).
template <typename T>
inline void copy_rows_padded(const T* src, int64_t rows, int64_t n, AlignedRows<T>& dst) {
  for (int64_t r = 0; r < rows; ++r) std::copy_n(src + r * n, n, dst.row(r));
}

template <typename io_t, typename acc_t, Reset R, bool kSaveU, bool kSaveI>
void rlif_fwd_kernel(const RlifFwdParams& rp, int64_t tile, int64_t begin, int64_t end) {
  const LifFwdParams& p = rp.lif;
  const int64_t N = p.N, NP = padded_width<io_t, acc_t>(N);
  const io_t* x = static_cast<const io_t*>(p.x);
  io_t* s = static_cast<io_t*>(p.s);
  const acc_t* i0 = static_cast<const acc_t*>(p.i0);
  const acc_t* u0 = static_cast<const acc_t*>(p.u0);
  acc_t* iT = static_cast<acc_t*>(p.iT);
  acc_t* uT = static_cast<acc_t*>(p.uT);
  acc_t* u_saved = static_cast<acc_t*>(p.u_saved);
  acc_t* i_saved = static_cast<acc_t*>(p.i_saved);

  const RlifConstRows<acc_t> k(p, NP);
  AlignedRows<acc_t> W(N, NP);  // V, rows padded
  copy_rows_padded(static_cast<const acc_t*>(rp.w), N, N, W);
  AlignedRows<acc_t> I(tile, NP), U(tile, NP), Rt(tile, NP);
  AlignedRows<acc_t> Sd(rp.dense_product ? tile : 0, NP);  // S_{t-1} of the tile, dense path
  // X_t's lanes [0, NF) (N rounded down to a whole vector) are read in place, the last lanes
  // [NF, NP) from a padded tail copy (pads zero): nothing past a row's end is read.
  const int64_t NF = in_place_lanes(N), NT = NP - NF;
  AlignedRows<io_t> XT(1, tail_width(N, NP)), Sb(1, NP);  // X_t's tail, a row of S_t
  std::vector<int32_t> spiked(N);  // a row's spiking neurons, ascending
  const bool short_rows = has_short_row_walk<acc_t>() && NP <= 128;
  const bool s_lines = p.s_st == N;  // a batch row's steps of S lie back to back
  std::vector<LineWriter<io_t, false>> ws(s_lines ? tile : 0);
  std::vector<LineWriter<acc_t, false>> wu(kSaveU ? tile : 0), wi(kSaveI ? tile : 0);

  for (int64_t item = begin; item < end; ++item) {
    const int64_t b0 = item * tile, nb = std::min(tile, p.B - b0);
    for (int64_t r = 0; r < nb; ++r) {
      std::copy_n(i0 + (b0 + r) * N, N, I.row(r));
      std::copy_n(u0 + (b0 + r) * N, N, U.row(r));
      if (s_lines) ws[r].start(s + (b0 + r) * p.s_sb);
      if constexpr (kSaveU) wu[r].start(u_saved + (b0 + r) * p.T * N);
      if constexpr (kSaveI) wi[r].start(i_saved + (b0 + r) * p.T * N);
    }
    for (int64_t t = 0; t < p.T; ++t) {
      // R_t = S_{t-1} @ V for every row of the tile, S_{t-1} recomputed from U_{t-1}.
      if (rp.dense_product) {
        for (int64_t r = 0; r < nb; ++r) {
          const acc_t* u = U.row(r);
          for (int64_t j = 0; j < NP; ++j) Sd.row(r)[j] = heaviside(u[j], k.Th.data()[j]);
        }
        tile_gemm<acc_t>(nb, NP, N, Sd.data(), NP, W.data(), NP, Rt.data(), NP);
      } else if (short_rows) {
        for (int64_t r = 0; r < nb; ++r) {
          recurrent_input_short(Rt.row(r), W, U.row(r), k.Th.data(), NP);
        }
      } else {
        for (int64_t r = 0; r < nb; ++r) {
          int64_t ns = 0;
          for_each_spike(U.row(r), k.Th.data(), NP,
                         [&](int64_t j) { spiked[ns++] = static_cast<int32_t>(j); });
          gather_rows(Rt.row(r), W.data(), NP, NP, spiked.data(), ns);
        }
      }
      for (int64_t r = 0; r < nb; ++r) {
        const int64_t b = b0 + r;
        const io_t* xt = x + b * p.x_sb + t * p.x_st;
        for (int64_t j = NF; j < N; ++j) XT.data()[j - NF] = xt[j];
        if (t + 1 < p.T) prefetch_row(xt + p.x_st, N * int64_t(sizeof(io_t)));
        // Lanes [j0, j0 + len), xr pointing at lane j0 of X_t's row.
        auto lanes = [&](int64_t j0, int64_t len, const io_t* __restrict__ xr) {
          acc_t* __restrict__ Ir = I.row(r) + j0;
          acc_t* __restrict__ Ur = U.row(r) + j0;
          const acc_t* __restrict__ rt = Rt.row(r) + j0;
          const acc_t* __restrict__ kA = k.A.data() + j0;
          const acc_t* __restrict__ kB = k.Be.data() + j0;
          const acc_t* __restrict__ kG = k.G.data() + j0;
          const acc_t* __restrict__ kT = k.Th.data() + j0;
          io_t* __restrict__ Sbr = Sb.data() + j0;
#pragma GCC ivdep  // lanes are independent
          for (int64_t j = 0; j < len; ++j) {
            const LifConsts<acc_t> c{kA[j], kB[j], kG[j], kT[j]};
            acc_t i = Ir[j], u = Ur[j];
            rlif_step_fwd<R>(c, static_cast<acc_t>(xr[j]), rt[j], i, u);
            Ir[j] = i;
            Ur[j] = u;
            Sbr[j] = static_cast<io_t>(heaviside(u, c.thr));
          }
        };
        lanes(0, NF, xt);
        if (NT > 0) lanes(NF, NT, XT.data());
        const io_t* Sbr = Sb.data();
        const acc_t* Ur = U.row(r);
        const acc_t* Ir = I.row(r);
        if (s_lines) {
          ws[r].push(Sbr, N);
        } else {
          stream_row(s + b * p.s_sb + t * p.s_st, Sbr, N);
        }
        if constexpr (kSaveU) wu[r].push(Ur, N);
        if constexpr (kSaveI) wi[r].push(Ir, N);
      }
    }
    for (int64_t r = 0; r < nb; ++r) {
      if (s_lines) ws[r].finish();
      if constexpr (kSaveU) wu[r].finish();
      if constexpr (kSaveI) wi[r].finish();
      std::copy_n(I.row(r), N, iT + (b0 + r) * N);
      std::copy_n(U.row(r), N, uT + (b0 + r) * N);
    }
  }
  stream_fence();
}

// dw: this run's dV partial [N, N] (zeroed by the caller) or nullptr.
template <typename io_t, typename acc_t, Reset R, Surrogate SG, bool kDetach, bool kParams>
void rlif_bwd_kernel(const RlifBwdParams& rp, int64_t tile, int64_t begin, int64_t end,
                     acc_t* dw) {
  constexpr bool kHasI = kParams || (R == Reset::Zero && !kDetach);
  const LifBwdParams& p = rp.lif;
  const int64_t N = p.N, NP = padded_width<io_t, acc_t>(N);
  const bool rec = !rp.detach_recurrent;
  const io_t* gs = static_cast<const io_t*>(p.gs);
  io_t* gx = static_cast<io_t*>(p.gx);
  const acc_t* giT = static_cast<const acc_t*>(p.giT);
  const acc_t* guT = static_cast<const acc_t*>(p.guT);
  const acc_t* u_saved = static_cast<const acc_t*>(p.u_saved);
  const acc_t* i_saved = static_cast<const acc_t*>(p.i_saved);
  const acc_t* i0 = static_cast<const acc_t*>(p.i0);
  const acc_t* u0 = static_cast<const acc_t*>(p.u0);
  acc_t* gi0 = static_cast<acc_t*>(p.gi0);
  acc_t* gu0 = static_cast<acc_t*>(p.gu0);
  acc_t* galpha = static_cast<acc_t*>(p.galpha);
  acc_t* gbeta = static_cast<acc_t*>(p.gbeta);
  acc_t* gthr = static_cast<acc_t*>(p.gthr);
  const acc_t kk = static_cast<acc_t>(p.scale);
  const acc_t norm = p.normalize_input ? acc_t(1) : acc_t(0);

  const RlifConstRows<acc_t> k(p, NP);
  AlignedRows<acc_t> Wt(rec ? N : 0, NP);  // Vᵀ, rows padded
  if (rec) copy_rows_padded(static_cast<const acc_t*>(rp.wt), N, N, Wt);
  // Carries of the reverse scan per (row, neuron); gI holds gI_{t+1} on entry to step t and
  // gI_t on exit; rc the recurrent part of dL/dS_t.
  AlignedRows<acc_t> cU(tile, NP), cI(tile, NP), cS(kDetach ? 0 : tile, NP), gI(tile, NP),
      rc(tile, NP);
  AlignedRows<acc_t> GA(kParams ? tile : 0, NP), GB(kParams ? tile : 0, NP),
      GT(kParams ? tile : 0, NP);
  // The lanes [0, NF) of a row (NF: N rounded down to a whole vector) are read in place from
  // the caller's rows of dL/dS, U and I; the last lanes [NF, NP) from padded tail copies (pads
  // zero), so nothing past a row's end is read and no whole row is copied.
  const int64_t NF = in_place_lanes(N), NT = NP - NF;
  AlignedRows<io_t> GsT(1, tail_width(N, NP));
  AlignedRows<acc_t> UT(2, tail_width(N, NP)), IT(kHasI ? 2 : 0, tail_width(N, NP));
  AlignedRows<acc_t> Zero(kHasI && i_saved == nullptr ? 1 : 0, N);  // zeros: see it_src
  constexpr bool kSameIo = std::is_same_v<io_t, acc_t>;  // dL/dX goes out from gI's row
  AlignedRows<io_t> Gx(kSameIo ? 0 : 1, NP);  // dL/dX_t of one row in the I/O dtype
  AlignedRows<acc_t> Dw(dw != nullptr ? N : 0, NP);  // this run's dV, rows padded
  const bool x_lines = p.gx_st == N;  // a batch row's steps of dL/dX lie back to back
  std::vector<LineWriter<io_t, true>> wx(x_lines ? tile : 0);
  std::vector<int32_t> spiked(dw != nullptr ? NP + 8 : 0);  // spike_indices of U_{t-1}

  for (int64_t item = begin; item < end; ++item) {
    const int64_t b0 = item * tile, nb = std::min(tile, p.B - b0);
    for (int64_t r = 0; r < nb; ++r) {
      std::copy_n(guT + (b0 + r) * N, N, cU.row(r));
      std::copy_n(giT + (b0 + r) * N, N, cI.row(r));
      if (x_lines) wx[r].start(gx + (b0 + r) * p.gx_sb + p.T * N);
    }
    if constexpr (!kDetach) std::fill_n(cS.data(), nb * NP, acc_t(0));
    if constexpr (kParams) {
      std::fill_n(GA.data(), nb * NP, acc_t(0));
      std::fill_n(GB.data(), nb * NP, acc_t(0));
      std::fill_n(GT.data(), nb * NP, acc_t(0));
    }
    std::fill_n(rc.data(), nb * NP, acc_t(0));  // no R_T: nothing recurrent reaches S_{T-1}
    for (int64_t t = p.T - 1; t >= 0; --t) {
      const bool rec_t = rec && t < p.T - 1;  // R_{t+1} exists: S_t fed step t+1
      if (rec_t) tile_gemm<acc_t>(nb, NP, N, gI.data(), NP, Wt.data(), NP, rc.data(), NP);
      for (int64_t r = 0; r < nb; ++r) {
        const int64_t b = b0 + r, bn = b * N;
        const io_t* gst = gs + b * p.gs_sb + t * p.gs_st;
        const int64_t off = (b * p.T + t) * N;
        const acc_t* ut_src = u_saved + off;
        const acc_t* up_src = t > 0 ? u_saved + off - N : u0 + bn;
        // I_t is not saved, and reads as 0, when only the threshold learns (its partial
        // needs no I_t)
        const acc_t* it_src = !kHasI ? nullptr : i_saved ? i_saved + off : Zero.data();
        const acc_t* ip_src =
            !kHasI ? nullptr : i_saved ? (t > 0 ? i_saved + off - N : i0 + bn) : Zero.data();
        if (t > 0) {  // the rows of step t-1
          prefetch_row(gst - p.gs_st, N * int64_t(sizeof(io_t)));
          if (t > 1) prefetch_row(up_src - N, N * int64_t(sizeof(acc_t)));
          if (kHasI && i_saved && t > 1) prefetch_row(ip_src - N, N * int64_t(sizeof(acc_t)));
        }
        for (int64_t j = NF; j < N; ++j) {
          GsT.data()[j - NF] = gst[j];
          UT.row(0)[j - NF] = ut_src[j];
          UT.row(1)[j - NF] = up_src[j];
          if constexpr (kHasI) {
            IT.row(0)[j - NF] = it_src[j];
            IT.row(1)[j - NF] = ip_src[j];
          }
        }
        acc_t* __restrict__ gIrow = gI.row(r);
        io_t* gx_row = nullptr;
        if constexpr (kSameIo) {
          gx_row = gIrow;
        } else {
          gx_row = Gx.data();
        }
        // Lanes [j0, j0 + len): gsr, ut, up, it, ip point at lane j0 of their rows.
        auto lanes = [&](int64_t j0, int64_t len, const io_t* __restrict__ gsr,
                         const acc_t* __restrict__ ut, const acc_t* __restrict__ up,
                         const acc_t* __restrict__ it, const acc_t* __restrict__ ip) {
          const acc_t* __restrict__ rcr = rc.row(r) + j0;  // zero unless rec_t
          acc_t* __restrict__ gIr = gIrow + j0;
          acc_t* __restrict__ cUr = cU.row(r) + j0;
          acc_t* __restrict__ cIr = cI.row(r) + j0;
          acc_t* __restrict__ cSr = kDetach ? nullptr : cS.row(r) + j0;
          acc_t* __restrict__ GAr = kParams ? GA.row(r) + j0 : nullptr;
          acc_t* __restrict__ GBr = kParams ? GB.row(r) + j0 : nullptr;
          acc_t* __restrict__ GTr = kParams ? GT.row(r) + j0 : nullptr;
          io_t* __restrict__ Gxr = kSameIo ? nullptr : Gx.data() + j0;
          const acc_t* __restrict__ kA = k.A.data() + j0;
          const acc_t* __restrict__ kB = k.Be.data() + j0;
          const acc_t* __restrict__ kG = k.G.data() + j0;
          const acc_t* __restrict__ kT = k.Th.data() + j0;
#pragma GCC ivdep  // lanes are independent
          for (int64_t j = 0; j < len; ++j) {
            const LifConsts<acc_t> c{kA[j], kB[j], kG[j], kT[j]};
            LifGradCarry<acc_t> carry{cUr[j], cIr[j], acc_t(0)};
            if constexpr (!kDetach) carry.gS = cSr[j];
            acc_t i_t = acc_t(0);
            if constexpr (kHasI) i_t = it[j];
            const acc_t g_in = static_cast<acc_t>(gsr[j]) + rcr[j];
            const auto res = lif_step_bwd<R, SG, kDetach>(c, kk, g_in, ut[j], up[j], i_t, carry);
            cUr[j] = carry.gU;
            cIr[j] = carry.gI;
            if constexpr (!kDetach) cSr[j] = carry.gS;
            gIr[j] = res.gx;
            if constexpr (!kSameIo) Gxr[j] = static_cast<io_t>(res.gx);
            if constexpr (kParams) {
              lif_param_grads<R>(c, norm, res, up[j], ip[j], i_t, GAr[j], GBr[j], GTr[j]);
            }
          }
        };
        lanes(0, NF, gst, ut_src, up_src, it_src, ip_src);
        if (NT > 0) {
          lanes(NF, NT, GsT.data(), UT.row(0), UT.row(1), kHasI ? IT.row(0) : nullptr,
                kHasI ? IT.row(1) : nullptr);
        }
        if (x_lines) {
          wx[r].push(gx_row, N);
          if (t == 0) wx[r].finish();
        } else {
          stream_row(gx + b * p.gx_sb + t * p.gx_st, gx_row, N);
        }
        if (dw != nullptr) {  // dV[j, :] += gI_t for every neuron j that spiked at t-1
          int64_t ns = spike_indices(up_src, k.Th.data(), NF, spiked.data());
          if (NT > 0) ns += spike_indices(UT.row(1), k.Th.data() + NF, NT, spiked.data() + ns, NF);
          for (int64_t q = 0; q < ns; ++q) add_row(Dw.row(spiked[q]), gIrow, NP);
          // The neurons that did not spike add 0 * gI_t, nothing unless gI_t holds an inf or a
          // NaN, where the reference's dense S_prevᵀ @ gI gets NaN (0 * inf): added then, so
          // dV has the reference's NaNs (an inf or NaN in V, X or dL/dS) at O(N) a row else.
          if (!all_finite(gIrow, N)) add_zero_times(Dw, gIrow, N, spiked.data(), ns);
        }
      }
    }
    // Step -1: S_{-1} = Θ(U_{-1} - ϑ) fed R_0, so gI_0 @ Vᵀ joins its gradient.
    if (rec && p.T > 0) tile_gemm<acc_t>(nb, NP, N, gI.data(), NP, Wt.data(), NP, rc.data(), NP);
    for (int64_t r = 0; r < nb; ++r) {
      const int64_t bn = (b0 + r) * N;
      for (int64_t j = 0; j < N; ++j) {
        const LifConsts<acc_t> c{k.A[j], k.Be[j], k.G[j], k.Th[j]};
        const acc_t gs_reset = kDetach ? acc_t(0) : cS.row(kDetach ? 0 : r)[j];
        const LifGradCarry<acc_t> carry{cU.row(r)[j], cI.row(r)[j],
                                        rec ? gs_reset + rc.row(r)[j] : gs_reset};
        acc_t gt_unused = acc_t(0);
        acc_t& gt = kParams ? GT.row(kParams ? r : 0)[j] : gt_unused;
        lif_initial_state_grads<SG>(c, kk, u0[bn + j], carry, gi0[bn + j], gu0[bn + j], gt);
        if constexpr (kParams) {
          galpha[bn + j] = GA.row(r)[j];
          gbeta[bn + j] = GB.row(r)[j];
          gthr[bn + j] = GT.row(r)[j];
        }
      }
    }
  }
  if (dw != nullptr) {
    for (int64_t j = 0; j < N; ++j) {
      const acc_t* d = Dw.row(j);
      for (int64_t c = 0; c < N; ++c) dw[j * N + c] += d[c];
    }
  }
  stream_fence();
}

void rlif_fwd_items(const RlifFwdParams& p, IoType io, int64_t tile, int64_t begin,
                    int64_t end) {
  dispatch_io(io, [&](auto io_v, auto acc_v) {
    using io_t = decltype(io_v);
    using acc_t = decltype(acc_v);
    dispatch_reset(p.lif.reset, [&](auto r) {
      dispatch_bool(p.lif.u_saved != nullptr, [&](auto su) {
        dispatch_bool(p.lif.i_saved != nullptr, [&](auto si) {
          rlif_fwd_kernel<io_t, acc_t, decltype(r)::value, decltype(su)::value,
                          decltype(si)::value>(p, tile, begin, end);
        });
      });
    });
  });
}

void rlif_bwd_items(const RlifBwdParams& p, IoType io, int64_t tile, int64_t begin, int64_t end,
                    void* dw) {
  dispatch_io(io, [&](auto io_v, auto acc_v) {
    using io_t = decltype(io_v);
    using acc_t = decltype(acc_v);
    dispatch_reset(p.lif.reset, [&](auto r) {
      dispatch_surrogate(p.lif.surrogate, [&](auto sg) {
        const bool detach = p.lif.detach_reset || decltype(r)::value == Reset::None;
        dispatch_bool(detach, [&](auto kd) {
          dispatch_bool(p.lif.galpha != nullptr, [&](auto kp) {
            rlif_bwd_kernel<io_t, acc_t, decltype(r)::value, decltype(sg)::value,
                            decltype(kd)::value, decltype(kp)::value>(
                p, tile, begin, end, static_cast<acc_t*>(dw));
          });
        });
      });
    });
  });
}

}  // namespace FASTSNN_CPU_ISA
}  // namespace fastsnn
