// The CPU kernels for AVX2. Everything shared with the baseline build (standard library, c10
// number types, the per-step math) is included before the target pragma, so its out-of-line
// copies stay baseline code; only the kernel bodies below it, in their own namespace, are
// compiled for AVX2. Inlined into them, the shared math vectorizes eight lanes wide.
#if defined(__x86_64__) && defined(__GNUC__)
#include "../common/cpu_dispatch.h"
#include "../common/cpu_isa.h"
#include "../li/li_math.h"
#include "../lif/lif_math.h"
#include <immintrin.h>
#include <memory>
#include <vector>

// FMA only where written explicitly (the rlif tile products): -ffp-contract=off keeps the
// compiler from fusing anything else, so the per-step math still rounds like the baseline.
#pragma GCC target("avx2,fma")
#define FASTSNN_CPU_ISA avx2
#define FASTSNN_CPU_FMA 1
#include "../lif/lif_cpu_kernels.h"
#include "../rlif/rlif_cpu_kernels.h"
#include "../linear/spike_linear_cpu_kernels.h"
#endif
