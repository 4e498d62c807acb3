// The CPU kernels for baseline x86-64 (and any other architecture).
#include "../common/cpu_dispatch.h"
#include "../li/li_math.h"
#include "../lif/lif_math.h"
#include <memory>
#include <vector>

#define FASTSNN_CPU_ISA base
#include "../lif/lif_cpu_kernels.h"
#include "../rlif/rlif_cpu_kernels.h"
#include "../linear/spike_linear_cpu_kernels.h"
