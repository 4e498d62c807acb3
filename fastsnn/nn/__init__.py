"""Drop-in modules over fastsnn's functions (SPEC section 3): they hold parameters and call
``fastsnn.lif`` / ``rlif`` / ``li``; no kernel logic lives here."""

from .modules import LIF, LIFNeuron, LeakyIntegrator, RecurrentLIF

__all__ = ["LIF", "LIFNeuron", "LeakyIntegrator", "RecurrentLIF"]
