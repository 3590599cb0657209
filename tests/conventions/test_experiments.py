"""Tests of book/conventions/experiments.md: the training loop and the figure helpers."""

import matplotlib
import pytest
import torch

from lossbook import huber_loss
from lossbook.conventions.experiments import PAGE_WIDTH, figure, fit, loss_and_gradient

matplotlib.use("Agg")


def test_fit_is_the_plain_loop():
    """fit takes the same steps as the loop written by hand, and records the loss before each."""
    x, y = torch.randn(20, 3, generator=torch.Generator().manual_seed(0)), torch.randn(20)
    torch.manual_seed(1)
    model = torch.nn.Linear(3, 1)
    by_hand = torch.nn.Linear(3, 1)
    by_hand.load_state_dict(model.state_dict())
    history = fit(model, lambda: huber_loss(model(x)[:, 0], y), steps=25, lr=0.1, optimizer="sgd")
    optimizer, expected = torch.optim.SGD(by_hand.parameters(), lr=0.1), []
    for _ in range(25):
        optimizer.zero_grad()
        loss = huber_loss(by_hand(x)[:, 0], y)
        loss.backward()
        optimizer.step()
        expected.append(loss.item())
    assert history == expected and history[-1] < history[0]
    torch.testing.assert_close(model.weight, by_hand.weight, rtol=0, atol=0)


def test_fit_takes_tensors_and_optimizer_classes_and_refuses_unknown_names():
    w = torch.zeros(2, requires_grad=True)
    fit([w], lambda: ((w - 1) ** 2).sum(), steps=200, lr=0.1, optimizer=torch.optim.Adam)
    torch.testing.assert_close(w.detach(), torch.ones(2), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="optimizer must be"):
        fit([w], lambda: w.sum(), steps=1, lr=0.1, optimizer="lbfgs")


def test_loss_and_gradient_on_a_grid():
    grid = torch.linspace(-3, 3, 13)
    values, slopes = loss_and_gradient(lambda r: huber_loss(r, torch.zeros_like(r), reduction="none"), grid)
    torch.testing.assert_close(slopes, grid.clamp(-1, 1))
    assert not values.requires_grad and values.shape == grid.shape


def test_figure_is_as_wide_as_the_page():
    fig, axes = figure(3, 2, sharex=True)
    assert axes.shape == (2, 3) and fig.get_size_inches()[0] == PAGE_WIDTH
    assert fig.get_size_inches()[1] == pytest.approx(2 * 2.6)  # a row is never flatter than 2.6 inches
    import matplotlib.pyplot as plt

    plt.close(fig)
