// The rlif backward's tile product alone (tile_gemm of csrc/rlif/rlif_cpu_kernels.h): 8 rows of
// gI [8, 104] times Vᵀ [100, 104] at N = 100, hot in cache, against 2 FMAs a cycle at 3.64 GHz
// (fma_peak.c). From the repository root:
//   g++ -O3 -std=c++20 -ffp-contract=off -fno-trapping-math -Icsrc \
//     -I.venv/lib/python3.11/site-packages/torch/include \
//     benchmarks/results/2026-12-01-rlif-cpu-dvlist/tile_gemm_bench.cpp -o /tmp/tgb && /tmp/tgb
#include "common/cpu_dispatch.h"
#include "lif/lif_math.h"
#include <immintrin.h>
#include <memory>
#include <vector>
#include <chrono>
#include <cstdio>
#pragma GCC target("avx2,fma")
#define FASTSNN_CPU_ISA avx2
#define FASTSNN_CPU_FMA 1
#include "rlif/rlif_cpu_kernels.h"
using namespace fastsnn::avx2;
int main() {
  const int64_t M = 8, N = 100, NP = 104, K = 100;
  int reps = 200000;
  std::vector<float> A(M * NP), Bm(N * NP), C(M * NP);
  for (auto& v : A) v = 0.01f; for (auto& v : Bm) v = 0.02f;
  for (int w = 0; w < 2; ++w) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) {
      tile_gemm<float>(M, NP, K, A.data(), NP, Bm.data(), NP, C.data(), NP);
      A[i % (M*NP)] = C[(i * 7) % (M*NP)] * 1e-3f;
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double ideal = double(M) * 13 * K / 2 / 3.64e9;  // s per call at 2 FMA/cycle, 3.64 GHz
    printf("%.1f ns per call, ideal %.1f ns: %.0f%%\n", s / reps * 1e9, ideal * 1e9, ideal / (s / reps) * 100);
  }
}
