"""Readout losses and accuracy against hand-computed cross-entropies and gradients."""

import math

import pytest
import torch

from fastsnn.losses import (accuracy, last_step_ce, max_over_time_ce, readout_loss,
                            sum_over_time_ce)

# U (B=2, T=3, C=3); y = [2, 0]
U_ROWS = [[[0.0, 1.0, 0.5], [2.0, -1.0, 0.5], [1.0, 0.0, 3.0]],
          [[0.5, 0.0, 1.0], [0.0, 2.5, -1.0], [1.5, 0.0, 0.0]]]
Y = [2, 0]
READOUTS = {  # (B, C) logits of each readout, by hand
    "max": [[2.0, 1.0, 3.0], [1.5, 2.5, 1.0]],
    "sum": [[1.0, 0.0, 4.0 / 3], [2.0 / 3, 2.5 / 3, 0.0]],
    "last": [[1.0, 0.0, 3.0], [1.5, 0.0, 0.0]],
}
FUNCTIONS = {"max": max_over_time_ce, "sum": sum_over_time_ce, "last": last_step_ce}


def _ce(logits, y):
    """Batch-mean cross-entropy by hand: log sum exp z - z_y."""
    return sum(math.log(sum(math.exp(z) for z in row)) - row[t]
               for row, t in zip(logits, y)) / len(y)


def _softmax(row):
    e = [math.exp(z) for z in row]
    return [v / sum(e) for v in e]


@pytest.mark.parametrize("kind", ["max", "sum", "last"])
def test_value_and_gradient(kind):
    U = torch.tensor(U_ROWS, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(Y)
    expected = _ce(READOUTS[kind], Y)
    for loss in (FUNCTIONS[kind](U, y), readout_loss(U, y, kind)):
        assert loss.item() == pytest.approx(expected, rel=1e-12)
    (g,) = torch.autograd.grad(FUNCTIONS[kind](U, y), U)
    # dL/dlogit = (softmax - onehot) / B, routed to the steps each readout reads
    expected_g = torch.zeros(2, 3, 3, dtype=torch.float64)
    for b in range(2):
        d = [(p - (c == Y[b])) / 2 for c, p in enumerate(_softmax(READOUTS[kind][b]))]
        for c in range(3):
            if kind == "max":
                expected_g[b, max(range(3), key=lambda t: U_ROWS[b][t][c]), c] = d[c]
            elif kind == "sum":
                expected_g[b, :, c] = d[c] / 3
            else:
                expected_g[b, -1, c] = d[c]
    torch.testing.assert_close(g, expected_g, rtol=1e-12, atol=1e-15)


def test_max_is_the_default_and_time_first_layout():
    U = torch.tensor(U_ROWS, dtype=torch.float64)
    y = torch.tensor(Y)
    assert readout_loss(U, y).item() == pytest.approx(_ce(READOUTS["max"], Y), rel=1e-12)
    for kind in ("max", "sum", "last"):
        torch.testing.assert_close(readout_loss(U.transpose(0, 1), y, kind, batch_first=False),
                                   readout_loss(U, y, kind))


def test_low_precision_input_gives_a_float32_loss():
    U = torch.tensor(U_ROWS, dtype=torch.bfloat16, requires_grad=True)
    loss = max_over_time_ce(U, torch.tensor(Y))
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(_ce(READOUTS["max"], Y), rel=1e-6)  # exact in bf16
    loss.backward()
    assert U.grad.dtype == torch.bfloat16


def test_accuracy():
    U = torch.tensor(U_ROWS)
    y = torch.tensor(Y)
    # argmax of max: [2, 1] -> 1 of 2; of sum: [2, 1] -> 1 of 2; of last: [2, 0] -> 2 of 2
    assert accuracy(U, y).item() == 0.5
    assert accuracy(U, y, "sum").item() == 0.5
    assert accuracy(U, y, "last").item() == 1.0
    assert accuracy(U, torch.tensor([0, 1])).item() == 0.5


def test_argument_errors():
    U, y = torch.zeros(2, 3, 4), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="kind"):
        readout_loss(U, y, "mean")
    with pytest.raises(ValueError, match="kind"):
        accuracy(U, y, kind="first")
    with pytest.raises(ValueError, match="U must have 3 dimensions"):
        max_over_time_ce(torch.zeros(2, 4), y)
    with pytest.raises(ValueError, match="time step"):
        last_step_ce(torch.zeros(2, 0, 4), y)
    with pytest.raises(TypeError, match="y must be an integer"):
        max_over_time_ce(U, y.float())
    with pytest.raises(ValueError, match=r"y must have shape \(B,\) = \(2,\)"):
        max_over_time_ce(U, torch.tensor([0, 1, 2]))


def test_max_readout_gradient_goes_to_one_step_on_ties():
    # a readout that never rises above 0 ties over every step: the whole gradient of its
    # logit lands on one step (torch.max's choice), not spread over the ties
    U = torch.zeros(2, 5, 3, dtype=torch.float64, requires_grad=True)
    max_over_time_ce(U, torch.tensor([0, 2])).backward()
    g = U.grad
    assert ((g != 0).sum(dim=1) == 1).all()
    logits = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2])).backward()
    assert torch.allclose(g.sum(dim=1), logits.grad)
