// Stand-in for the CUDA header of the same name in the host emulation (csrc/emu/cuda_emu.h).
#pragma once
#include "../cuda_emu.h"
