"""Integer codes of reset modes and surrogates, shared with the kernels (csrc/common/surrogate.h)."""

RESETS = {"zero": 0, "subtract": 1, "none": 2}
SURROGATES = {
    "superspike": 0,
    "superspike_asymptotic": 1,
    "sigmoid": 2,
    "esser": 3,
    "atan": 4,
    "exponential": 5,
}
