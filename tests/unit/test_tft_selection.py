"""The TFT's batched per-variable GRNs against the per-variable modules they replace.

:class:`~model_zoo.nets.tft.VariableGRNs` must compute what one
:class:`~model_zoo.nets.tft.GatedResidualNetwork` per variable computed (outputs and
gradients, dropout included), start from the same weights for a seed, and load a network
saved in the per-variable layout (``selection.processors.<j>.hidden.weight``, ...);
:class:`~model_zoo.nets.tft.VariableSelection` (selector folded with the embedding, GRNs
run a few rows at a time) must compute what the concatenate-then-loop version did.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from model_zoo.base import ModelConfig, SupervisedData  # noqa: E402
from model_zoo.nets.tft import (  # noqa: E402
    GatedResidualNetwork,
    TFTModel,
    VariableGRNs,
    VariableSelection,
)

N_VARIABLES, WIDTH = 5, 8
PARTS = {"hidden": "hidden", "output": "output", "gate": "gated_skip.gate",
         "norm": "gated_skip.norm"}


class PerVariableGRNs(nn.Module):
    """The layout before :class:`VariableGRNs`: one GRN per variable, applied in a loop."""

    def __init__(self, n_variables: int, width: int, dropout: float) -> None:
        super().__init__()
        self.grns = nn.ModuleList(
            GatedResidualNetwork(width, width, width, dropout) for _ in range(n_variables)
        )

    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        return torch.stack(
            [grn(embedded[..., j, :]) for j, grn in enumerate(self.grns)], dim=-2
        )


def per_variable_layout(state: dict[str, torch.Tensor], prefix: str) -> dict:
    """``state`` with the stacked ``{prefix}<part>_weight`` entries split per variable into
    ``{prefix}<j>.<part>.weight`` in :class:`torch.nn.Linear`'s ``(out, in)`` layout."""
    old = {key: value for key, value in state.items() if not key.startswith(prefix)}
    for name, part in PARTS.items():
        weight, bias = state[f"{prefix}{name}_weight"], state[f"{prefix}{name}_bias"]
        for j in range(len(weight)):
            old[f"{prefix}{j}.{part}.weight"] = (
                weight[j] if name == "norm" else weight[j].t()).clone()
            old[f"{prefix}{j}.{part}.bias"] = bias[j].clone()
    return old


def batched_from(reference: PerVariableGRNs, dropout: float) -> VariableGRNs:
    """A :class:`VariableGRNs` with ``reference``'s weights, copied by hand."""
    batched = VariableGRNs(N_VARIABLES, WIDTH, dropout)
    with torch.no_grad():
        for j, grn in enumerate(reference.grns):
            batched.hidden_weight[j] = grn.hidden.weight.t()
            batched.hidden_bias[j] = grn.hidden.bias
            batched.output_weight[j] = grn.output.weight.t()
            batched.output_bias[j] = grn.output.bias
            batched.gate_weight[j] = grn.gated_skip.gate.weight.t()
            batched.gate_bias[j] = grn.gated_skip.gate.bias
            batched.norm_weight[j] = grn.gated_skip.norm.weight
            batched.norm_bias[j] = grn.gated_skip.norm.bias
    return batched


def variable_first(embedded: torch.Tensor) -> torch.Tensor:
    """``(..., n_variables, width)`` as :class:`VariableGRNs` takes it: variable first."""
    return embedded.reshape(-1, N_VARIABLES, WIDTH).transpose(0, 1).contiguous()


def assert_same_grads(batched: VariableGRNs, reference: PerVariableGRNs) -> None:
    for name, part in PARTS.items():
        for kind in ("weight", "bias"):
            stacked = getattr(batched, f"{name}_{kind}").grad
            for j, grn in enumerate(reference.grns):
                expected = grn.get_submodule(part).get_parameter(kind).grad
                if kind == "weight" and name != "norm":
                    expected = expected.t()
                torch.testing.assert_close(stacked[j], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_batched_grns_match_the_per_variable_loop(training: bool) -> None:
    dropout = 0.3
    torch.manual_seed(0)
    reference = PerVariableGRNs(N_VARIABLES, WIDTH, dropout)
    with torch.no_grad():  # LayerNorm affines away from their (1, 0) start
        for grn in reference.grns:
            grn.gated_skip.norm.weight.uniform_(0.5, 1.5)
            grn.gated_skip.norm.bias.uniform_(-0.5, 0.5)
    batched = batched_from(reference, dropout)
    reference.train(training)
    batched.train(training)
    embedded = torch.randn(4, 6, N_VARIABLES, WIDTH)
    upstream = torch.randn(4, 6, N_VARIABLES, WIDTH)
    x_reference = embedded.clone().requires_grad_(True)
    torch.manual_seed(1)  # the same dropout draws
    expected = reference(x_reference)
    (expected * upstream).sum().backward()
    x_batched = variable_first(embedded).requires_grad_(True)
    torch.manual_seed(1)
    got = batched(x_batched)
    (got * variable_first(upstream)).sum().backward()
    assert got.shape == (N_VARIABLES, 4 * 6, WIDTH)
    torch.testing.assert_close(got, variable_first(expected.detach()), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x_batched.grad, variable_first(x_reference.grad),
                               rtol=1e-5, atol=1e-5)
    if training:  # dropout really dropped something, on both sides alike
        assert not torch.allclose(got, batched.eval()(variable_first(embedded)))
    assert_same_grads(batched, reference)


def old_selection(selection: VariableSelection, reference: PerVariableGRNs,
                  x: torch.Tensor) -> torch.Tensor:
    """What ``VariableSelection`` computed before: the selector GRN on the concatenated
    embeddings and the per-variable GRNs in a loop."""
    embedded = x.unsqueeze(-1) * selection.embed_weight + selection.embed_bias
    weights = torch.softmax(selection.selector(embedded.flatten(-2)), dim=-1)
    return (weights.unsqueeze(-1) * reference(embedded)).sum(dim=-2)


@pytest.mark.parametrize("width", [WIDTH, 1])
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_the_selection_network_matches_the_per_variable_loop(
        training: bool, width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(VariableSelection, "ROWS_PER_PASS", 16)  # 3 passes over 42 rows
    torch.manual_seed(4)
    selection = VariableSelection(N_VARIABLES, width, 0.2)
    torch.manual_seed(4)
    old = VariableSelection(N_VARIABLES, width, 0.2)
    reference = PerVariableGRNs(N_VARIABLES, width, 0.2)
    reference.load_state_dict({"grns." + key: value for key, value in
                               per_variable_layout(selection.processors.state_dict(), "").items()})
    with torch.no_grad():  # an embedding bias away from its zero start
        selection.embed_bias.normal_()
        old.embed_bias.copy_(selection.embed_bias)
    for module in (selection, old, reference):
        module.train(training)
    x = torch.randn(6, 7, N_VARIABLES)
    upstream = torch.randn(6, 7, width)
    torch.manual_seed(9)
    got, weights = selection(x)
    (got * upstream).sum().backward()
    torch.manual_seed(9)
    expected = old_selection(old, reference, x)
    (expected * upstream).sum().backward()
    assert got.shape == (6, 7, width) and weights.shape == (6, 7, N_VARIABLES)
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(6, 7))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    for name, parameter in old.named_parameters():
        if not name.startswith("processors."):
            torch.testing.assert_close(selection.get_parameter(name).grad, parameter.grad,
                                       rtol=1e-4, atol=1e-5, msg=name)
    if width > 1:  # a LayerNorm over one value is constant: its inputs' gradients are noise
        assert_same_grads(selection.processors, reference)


def test_a_seed_gives_the_per_variable_modules_initial_weights() -> None:
    torch.manual_seed(11)
    reference = PerVariableGRNs(N_VARIABLES, WIDTH, 0.1)
    torch.manual_seed(11)
    batched = VariableGRNs(N_VARIABLES, WIDTH, 0.1)
    expected = per_variable_layout(batched.state_dict(), "")
    assert {f"grns.{key}" for key in expected} == set(reference.state_dict())
    for key, value in reference.state_dict().items():
        assert torch.equal(expected[key.removeprefix("grns.")], value), key


def test_the_per_variable_layout_loads_strictly() -> None:
    torch.manual_seed(2)
    reference = PerVariableGRNs(N_VARIABLES, WIDTH, 0.0).eval()
    old_state = {key.removeprefix("grns."): value
                 for key, value in reference.state_dict().items()}
    batched = VariableGRNs(N_VARIABLES, WIDTH, 0.0).eval()
    batched.load_state_dict(old_state)
    embedded = torch.randn(3, 7, N_VARIABLES, WIDTH)
    torch.testing.assert_close(batched(variable_first(embedded)),
                               variable_first(reference(embedded)), rtol=1e-5, atol=1e-6)
    assert len(old_state) == 8 * N_VARIABLES  # the caller's dict is left as it was
    incomplete = {k: v for k, v in old_state.items() if not k.startswith(f"{N_VARIABLES - 1}.")}
    with pytest.raises(RuntimeError, match="hidden_weight"):
        VariableGRNs(N_VARIABLES, WIDTH, 0.0).load_state_dict(incomplete)


def _planted(n: int, lookback: int, n_features: int, seed: int) -> SupervisedData:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, lookback, n_features)).astype(np.float32)
    y = (0.5 * X[:, -1, 0] + rng.normal(size=n)).astype(np.float32) * 0.01
    return SupervisedData(X=X, y=y)


def test_a_tft_saved_in_the_per_variable_layout_predicts_the_same(tmp_path: Path) -> None:
    features = ("target", "a", "b", "c")
    config = ModelConfig(hparams={"hidden_size": 8, "n_heads": 2, "max_epochs": 1,
                                  "batch_size": 64}, feature_names=features, lookback=6)
    train, test = _planted(300, 6, len(features), 0), _planted(50, 6, len(features), 1)
    model = TFTModel(config).fit(train)
    expected = model.predict(test.X)
    model.save(tmp_path)
    weights = tmp_path / TFTModel.WEIGHTS_FILE
    state = torch.load(weights, map_location="cpu", weights_only=True)
    old_state = per_variable_layout(state, "selection.processors.")
    assert "selection.processors.3.gated_skip.gate.weight" in old_state
    assert old_state["selection.processors.0.hidden.weight"].shape == (8, 8)
    assert not any(key.endswith("_weight") and "processors" in key for key in old_state)
    torch.save(old_state, weights)
    restored = TFTModel.load(tmp_path)
    np.testing.assert_array_equal(restored.predict(test.X), expected)
    torch.testing.assert_close(restored.network.state_dict()["selection.processors.gate_weight"],
                               state["selection.processors.gate_weight"], rtol=0, atol=0)
