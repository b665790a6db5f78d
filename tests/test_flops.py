"""MAC counts: flop_counter vs the registry's published figures, and the authors' closed form vs their numbers."""

from __future__ import annotations

import pytest
import torch

import focalnet
from focalnet.models.registry import get_spec
from focalnet.utils.flops import analytic_macs, count_macs, macs_by_operator

VARIANTS = focalnet.list_models("focalnet_*")

# The authors' FocalNet.flops() at 1000 classes, measured on their code (spec §3.2): (GMACs @224, GMACs @384).
ORIGINAL_FLOPS = {
    "focalnet_tiny_srf": (4.413, None),
    "focalnet_tiny_lrf": (4.486, None),
    "focalnet_small_srf": (8.613, None),
    "focalnet_small_lrf": (8.732, None),
    "focalnet_base_srf": (15.261, None),
    "focalnet_base_lrf": (15.419, None),
    "focalnet_tiny_iso": (1.112, None),
    "focalnet_small_iso": (4.305, None),
    "focalnet_base_iso": (16.934, None),
    "focalnet_large_fl3": (34.795, 102.25),
    "focalnet_large_fl4": (34.846, 102.40),
    "focalnet_xlarge_fl3": (61.498, 180.73),
    "focalnet_xlarge_fl4": (61.567, 180.93),
    "focalnet_huge_fl3": (115.10, None),
    "focalnet_huge_fl4": (115.81, None),
}


def _meta(name: str) -> torch.nn.Module:
    return focalnet.create_model(name, device="meta", num_classes=1000)


def test_every_variant_has_a_reference():
    assert set(ORIGINAL_FLOPS) == set(VARIANTS)
    assert all(get_spec(n).gmacs is not None for n in VARIANTS)


@pytest.mark.parametrize("name", VARIANTS)
def test_flop_counter_matches_registry(name):
    """The measured count (meta device, nothing allocated) is within 2 % of the registry at its resolution."""
    spec = get_spec(name)
    model = _meta(name)
    assert model.norm.weight.is_meta
    macs = count_macs(model, (1, 3, spec.img_size, spec.img_size))
    assert macs == pytest.approx(spec.gmacs, rel=0.02)


@pytest.mark.parametrize("name", VARIANTS)
def test_analytic_reproduces_original_flops(name):
    """The closed form, with the original's patch-size shortcut, gives the authors' own numbers to the digit."""
    model = _meta(name)
    at224, at384 = ORIGINAL_FLOPS[name]
    assert analytic_macs(model, 224, exact_patch_embed=False) == pytest.approx(at224, abs=6e-4)
    if at384 is not None:
        assert analytic_macs(model, 384, exact_patch_embed=False) == pytest.approx(at384, abs=6e-3)


@pytest.mark.parametrize("name", ["focalnet_tiny_srf", "focalnet_tiny_iso", "focalnet_large_fl4", "focalnet_huge_fl3"])
def test_analytic_and_counter_agree(name):
    """Two independent counts of the same network: they differ only by norms and element-wise terms (<1 %)."""
    spec = get_spec(name)
    model = _meta(name)
    counted = count_macs(model, (1, 3, spec.img_size, spec.img_size))
    exact = analytic_macs(model, spec.img_size)
    assert counted < exact
    assert counted == pytest.approx(exact, rel=0.01)
    # The registry's L/XL/H figures are the exact-kernel closed form (the original's is ~2.5 % low).
    if spec.kwargs.get("use_conv_embed"):
        assert exact == pytest.approx(spec.gmacs, abs=6e-3)
        assert analytic_macs(model, spec.img_size, exact_patch_embed=False) < 0.98 * exact


def test_count_scales_with_batch_and_runs_on_real_tensors():
    m = focalnet.FocalNet(embed_dim=16, depths=[1, 1, 1, 1], num_classes=5)
    m.train()
    one = count_macs(m, (1, 3, 64, 64))
    assert m.training  # mode restored
    assert count_macs(m, (3, 3, 64, 64)) == pytest.approx(3 * one)
    by_op = macs_by_operator(m, (1, 3, 64, 64))
    assert set(by_op) >= {"addmm", "convolution"}
    assert sum(by_op.values()) == pytest.approx(one)


def test_tiny_srf_breakdown_matches_spec():
    """Spec §3.2 (original code): addmm 3.820 + convolution 0.583 GMACs for tiny_srf at 224.

    We run the 1x1 ``h`` conv as a matmul on channels-last tokens, so its 0.347 GMACs move from ``convolution``
    to ``mm``; the depthwise convs and the patch embeddings stay convolutions.
    """
    by_op = macs_by_operator(_meta("focalnet_tiny_srf"))
    assert by_op["addmm"] == pytest.approx(3.820, abs=1e-3)
    h_macs = 12 * 56**2 * 96**2 / 1e9  # 12 blocks; (H·W)·C² is the same in every stage
    assert by_op["mm"] == pytest.approx(h_macs, rel=1e-6)
    assert by_op["convolution"] + by_op["mm"] == pytest.approx(0.583, abs=1e-3)


def test_bad_input_size():
    with pytest.raises(ValueError, match="input_size"):
        count_macs(_meta("focalnet_tiny_srf"), (3, 224, 224))
