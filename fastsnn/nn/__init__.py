"""Drop-in modules over fastsnn's functions (SPEC section 3): they hold parameters and call
``fastsnn.lif`` / ``rlif`` / ``li`` / ``adlif``; no kernel logic lives here.
``constrain_parameters(model)`` projects learned parameters into their ranges after an
optimizer step."""

from .modules import AdLIF, LIF, LIFNeuron, LeakyIntegrator, RecurrentLIF, constrain_parameters

__all__ = ["LIF", "LIFNeuron", "LeakyIntegrator", "RecurrentLIF", "AdLIF",
           "constrain_parameters"]
