// Surrogate derivatives sigma'(x) of the Heaviside spike, x = U - threshold, scale k.
// Host+device inline so the CPU and CUDA kernels run the same arithmetic (SPEC section 1).
#pragma once

#include <cmath>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define FASTSNN_HD __host__ __device__ __forceinline__
#else
#define FASTSNN_HD inline
#endif

namespace fastsnn {

// The integer codes are part of the op schemas (fastsnn/_enums.py mirrors them).
enum class Reset : int { Zero = 0, Subtract = 1, None = 2 };
enum class Surrogate : int {
  SuperSpike = 0,
  SuperSpikeAsymptotic = 1,
  Sigmoid = 2,
  Esser = 3,
  Atan = 4,
  Exponential = 5,
};

// Theta(v - thr) with Theta(0) = 0; written as a difference so every backend rounds alike.
template <typename acc_t>
FASTSNN_HD acc_t heaviside(acc_t v, acc_t thr) {
  return (v - thr) > acc_t(0) ? acc_t(1) : acc_t(0);
}

template <Surrogate kind, typename acc_t>
FASTSNN_HD acc_t surrogate_grad(acc_t x, acc_t k) {
  if constexpr (kind == Surrogate::SuperSpike) {
    const acc_t d = k * std::abs(x) + acc_t(1);
    return acc_t(1) / (d * d);
  } else if constexpr (kind == Surrogate::SuperSpikeAsymptotic) {
    const acc_t d = k * std::abs(x) + acc_t(1);
    return k / (d * d);
  } else if constexpr (kind == Surrogate::Sigmoid) {
    const acc_t s = acc_t(1) / (acc_t(1) + std::exp(-k * x));
    return s * (acc_t(1) - s);
  } else if constexpr (kind == Surrogate::Esser) {
    const acc_t v = acc_t(1) - k * std::abs(x);
    return v < acc_t(0) ? acc_t(0) : v;  // NaN propagates, as in clamp_min
  } else if constexpr (kind == Surrogate::Atan) {
    const acc_t z = acc_t(1.5707963267948966) * k * x;  // pi/2 * k * x
    return (k / acc_t(2)) / (acc_t(1) + z * z);
  } else {
    return std::exp(-k * std::abs(x));
  }
}

}  // namespace fastsnn
