// Runtime flags to compile-time template parameters, shared by the CPU and CUDA launchers
// (no torch headers, so the CUDA translation units can include it).
#pragma once

#include <stdexcept>
#include <string>
#include <type_traits>

#include "surrogate.h"

namespace fastsnn {

template <typename F>
void dispatch_reset(int reset, F&& f) {
  switch (static_cast<Reset>(reset)) {
    case Reset::Zero: return f(std::integral_constant<Reset, Reset::Zero>{});
    case Reset::Subtract: return f(std::integral_constant<Reset, Reset::Subtract>{});
    case Reset::None: return f(std::integral_constant<Reset, Reset::None>{});
  }
  throw std::invalid_argument("fastsnn: unknown reset code " + std::to_string(reset));
}

template <typename F>
void dispatch_surrogate(int sg, F&& f) {
  using S = Surrogate;
  switch (static_cast<S>(sg)) {
    case S::SuperSpike: return f(std::integral_constant<S, S::SuperSpike>{});
    case S::SuperSpikeAsymptotic: return f(std::integral_constant<S, S::SuperSpikeAsymptotic>{});
    case S::Sigmoid: return f(std::integral_constant<S, S::Sigmoid>{});
    case S::Esser: return f(std::integral_constant<S, S::Esser>{});
    case S::Atan: return f(std::integral_constant<S, S::Atan>{});
    case S::Exponential: return f(std::integral_constant<S, S::Exponential>{});
  }
  throw std::invalid_argument("fastsnn: unknown surrogate code " + std::to_string(sg));
}

template <typename F>
void dispatch_bool(bool v, F&& f) {
  if (v) return f(std::true_type{});
  return f(std::false_type{});
}

}  // namespace fastsnn
