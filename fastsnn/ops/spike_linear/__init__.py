"""spike_linear: a linear layer over spike inputs (function.py; fake.py: its meta registrations).
``fastsnn.ops.spike_linear.spike_linear`` is the public function (``fastsnn.spike_linear``)."""

from .function import SpikeLinearFunction, spike_linear

__all__ = ["spike_linear", "SpikeLinearFunction"]
