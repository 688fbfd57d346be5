"""UncertaintyLoss: analytic value, stationary point, masks."""

import math

import pytest

torch = pytest.importorskip("torch")

from train.losses import UncertaintyLoss


def test_known_value() -> None:
    loss_fn = UncertaintyLoss(2)
    with torch.no_grad():
        loss_fn.log_vars.copy_(torch.tensor([0.0, math.log(4.0)]))
    pred = torch.tensor([[1.0, 2.0], [3.0, 2.0]])
    target = torch.tensor([[2.0, 4.0], [3.0, 0.0]])
    loss, mse = loss_fn(pred, target)
    # mse = [(1 + 0) / 2, (4 + 4) / 2] = [0.5, 4]; loss = 0.5*1 + 0 + 4/4 + log 4
    torch.testing.assert_close(mse, torch.tensor([0.5, 4.0]))
    assert loss.item() == pytest.approx(0.5 + 1.0 + math.log(4.0), rel=1e-6)
    torch.testing.assert_close(loss_fn.sigmas(), torch.tensor([1.0, 2.0]))


def test_gradient_zero_at_log_mse() -> None:
    torch.manual_seed(0)
    pred, target = torch.randn(8, 5), torch.randn(8, 5)
    mse = ((pred - target) ** 2).mean(dim=0)
    loss_fn = UncertaintyLoss(5)
    with torch.no_grad():
        loss_fn.log_vars.copy_(torch.log(mse))
    loss, _ = loss_fn(pred, target)
    loss.backward()
    assert loss_fn.log_vars.grad is not None
    torch.testing.assert_close(loss_fn.log_vars.grad, torch.zeros(5), atol=1e-6, rtol=0)
    with torch.no_grad():
        loss_fn.log_vars.zero_()
    loss_fn.log_vars.grad = None
    loss_fn(pred, target)[0].backward()
    torch.testing.assert_close(loss_fn.log_vars.grad, 1.0 - mse)  # d/ds (m e^-s + s) at s=0


def test_mask_ignores_missing_labels_even_nan() -> None:
    loss_fn = UncertaintyLoss(3)
    pred = torch.tensor([[1.0, 2.0, 3.0], [2.0, 2.0, 3.0]], requires_grad=True)
    target = torch.tensor([[1.5, float("nan"), float("nan")], [2.0, 3.0, float("nan")]])
    mask = torch.tensor([[True, False, False], [True, True, False]])
    loss, mse = loss_fn(pred, target, mask)
    torch.testing.assert_close(mse, torch.tensor([0.125, 1.0, 0.0]))
    assert float(loss) == pytest.approx(1.125)  # the label-less task adds neither term
    loss.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    assert float(pred.grad[0, 1]) == 0.0 and float(pred.grad[1, 2]) == 0.0
    assert loss_fn.log_vars.grad is not None and float(loss_fn.log_vars.grad[2]) == 0.0
