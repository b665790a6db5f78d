"""Visualization: maps equal the golden modulators/gates, preprocessing of any image, ERF, attention, GIF/MP4, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import golden_files, load_golden, require_golden
from focalnet import FocalNet
from focalnet.viz import (
    PreparedImage,
    compute_maps,
    focal_kernels,
    load_image,
    modulation_maps,
    modulator_norm,
    prepare_image,
    resolve_blocks,
    upsample_to_image,
)

TOL = dict(atol=1e-4, rtol=1e-4)  # fixed by the golden README; never widen


def _tiny(**kw) -> FocalNet:
    torch.manual_seed(0)
    cfg = dict(embed_dim=8, depths=[1, 1, 2, 1], focal_levels=2, focal_windows=3, num_classes=5, drop_path_rate=0.0)
    cfg.update(kw)
    return FocalNet(**cfg).eval()


# ------------------------------------------------------------------------------------------------- golden
@pytest.mark.parametrize("name", [p.name for p in golden_files("focalnet")] or ["missing"])
def test_maps_equal_golden_modulator_norms_and_gates(name):
    path = next(p for p in require_golden("focalnet") if p.name == name)
    blob = load_golden(path)
    model = FocalNet(**blob["config"]).eval()
    model.load_state_dict(blob["state_dict"])
    golden = blob["modulation"]
    x = blob["input"]
    logits, maps = modulation_maps(model, x, which=list(golden))
    torch.testing.assert_close(logits, blob["logits"], **TOL)
    for key, ref in golden.items():
        expected = torch.linalg.vector_norm(ref["modulator"], dim=1)
        torch.testing.assert_close(modulator_norm(maps[key].modulator), expected, **TOL)
        torch.testing.assert_close(maps[key].gates, ref["gates"], **TOL)
    # The figure-level API (what the CLI and the web demo use) carries the same numbers for the first image.
    H, W = x.shape[-2:]
    result = compute_maps(model, PreparedImage(x[:1], np.zeros((H, W, 3), np.uint8)), which=list(golden), weights=name)
    assert [b.name for b in result.blocks] == [f"layers.{s}.blocks.{b}.modulation" for s, b in
                                               resolve_blocks(model, list(golden))]
    for b in result.blocks:
        ref = golden[b.name]
        torch.testing.assert_close(torch.from_numpy(b.modulator_norm),
                                   torch.linalg.vector_norm(ref["modulator"][0], dim=0), **TOL)
        torch.testing.assert_close(torch.from_numpy(b.gates), ref["gates"][0], **TOL)
        assert b.modulator_norm_up.shape == (H, W) and b.gates_up.shape == (ref["gates"].shape[1], H, W)


# ------------------------------------------------------------------------------------------------- upsampling
def test_upsample_is_the_notebooks_bilinear_upsample_and_fills_uncovered_pixels():
    m = torch.randn(2, 3, 5, 7)
    exact = upsample_to_image(m, 4, (20, 28))
    torch.testing.assert_close(exact, torch.nn.Upsample(scale_factor=4, mode="bilinear")(m))
    # The strided convs leave the last (H mod r) rows/cols uncovered: they repeat the edge.
    wider = upsample_to_image(m, 4, (23, 30))
    torch.testing.assert_close(wider[..., :20, :28], exact)
    torch.testing.assert_close(wider[..., 20:, :28], exact[..., 19:20, :].expand(-1, -1, 3, -1))
    torch.testing.assert_close(wider[..., :, 28:], wider[..., :, 27:28].expand(-1, -1, -1, 2))
    # Overhang (conv-embed stems) is cropped; 2-D maps work too.
    assert upsample_to_image(m[0, 0], 4, (18, 25)).shape == (18, 25)


# ------------------------------------------------------------------------------------------------- images
def test_prepare_image_any_mode_and_size(tmp_path):
    from PIL import Image

    rgb = (np.random.default_rng(0).random((60, 90, 3)) * 255).astype(np.uint8)
    p = prepare_image(rgb, size=64)
    assert p.display.shape == (64, 96, 3) and p.tensor.shape == (1, 3, 64, 96)  # shorter side, no crop
    # ImageNet normalisation of the displayed pixels
    torch.testing.assert_close(p.tensor[0, 0], (torch.from_numpy(p.display[..., 0]).float() / 255 - 0.485) / 0.229)

    gray = Image.fromarray(rgb[..., 0])
    assert prepare_image(gray, size=32).display.shape == (32, 48, 3)
    rgba = np.dstack([rgb, np.zeros((60, 90), np.uint8)])  # fully transparent: composited on white
    assert (load_image(rgba).getextrema() == ((255, 255), (255, 255), (255, 255)))
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert np.asarray(load_image(tmp_path / "a.png")).min() == 255
    sixteen = Image.fromarray((np.arange(60 * 90).reshape(60, 90) * 7).astype(np.uint16))
    assert np.asarray(load_image(sixteen)).max() == 255
    assert load_image(np.random.default_rng(1).random((10, 12))).size == (12, 10)  # float array in [0, 1]
    assert load_image(gray.convert("P")).mode == "RGB"

    small = prepare_image(rgb[:10, :12], size=None, stride=32)  # kept at 10x12, padded to the stride
    assert small.display.shape == (10, 12, 3) and small.tensor.shape == (1, 3, 32, 32)
    long = prepare_image(np.zeros((10, 1000, 3), np.uint8), size=64, max_side=256)
    assert long.display.shape[1] == 256 and long.tensor.shape[2] >= 32

    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(OSError, match="cannot read image"):  # ImageLoadError, from the package's one reader
        load_image(tmp_path / "bad.png")
    with pytest.raises(ValueError, match="image array"):
        load_image(np.zeros((4, 4, 2)))


def test_compute_maps_on_small_and_non_square_images():
    model = _tiny()
    img = (np.random.default_rng(0).random((50, 70, 3)) * 255).astype(np.uint8)
    for size in (None, 40, 96):
        r = compute_maps(model, img, size=size)
        H, W = r.image.shape[:2]
        assert [(b.stage, b.block) for b in r.blocks] == [(0, 0), (1, 0), (2, 1), (3, 0)]
        for b in r.blocks:
            assert b.modulator_norm_up.shape == (H, W) and b.gates_up.shape == (3, H, W)
            assert np.isfinite(b.modulator_norm_up).all() and (b.modulator_norm >= 0).all()
        assert not r.meaningful and str(r.to_npz_dict()["weights"]) == "random"
    # Strings are the user-facing, 1-based numbering of the figure titles; tuples and module paths are 0-based.
    assert resolve_blocks(model, ["4", "3.1", (-1, -1), "layers.1.blocks.0.modulation", "-1"]) == [(3, 0), (2, 0),
                                                                                                   (1, 0)]
    assert resolve_blocks(model, ["1", "3.2", "3.-1"]) == [(0, 0), (2, 1)]
    with pytest.raises(ValueError, match="stage 5 does not exist: the model has 4 stage.*1..4"):
        resolve_blocks(model, ["5"])
    with pytest.raises(ValueError, match="block 3 does not exist in stage 3, which has 2 block.*1..2"):
        resolve_blocks(model, ["3.3"])
    with pytest.raises(ValueError, match="numbered from 1"):
        resolve_blocks(model, ["0"])
    with pytest.raises(ValueError, match="cannot read block"):
        resolve_blocks(model, ["x"])
    iso = FocalNet(embed_dim=8, depths=[8], patch_size=16, focal_levels=3, focal_windows=3, num_classes=0).eval()
    assert resolve_blocks(iso, None) == [(0, 1), (0, 3), (0, 5), (0, 7)]  # every quarter: blocks 2/4/6/8


def test_maps_api_leaves_the_model_untouched():
    model = _tiny(drop_path_rate=0.5).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    compute_maps(model, np.zeros((64, 64, 3), np.uint8))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(k for m in model.modules() for k in vars(m) if k in {"modulator", "gates"})


def test_focal_kernels_are_channel_means_per_level():
    model = _tiny(focal_levels=[1, 2, 3, 2], focal_windows=[3, 3, 1, 5])
    k = focal_kernels(model)
    assert [[a.shape[0] for a in k[s]] for s in range(4)] == [[3], [3, 5], [1, 3, 5], [5, 7]]
    w = model.layers[2].blocks[-1].modulation.focal_layers[2][0].weight
    np.testing.assert_allclose(k[2][2], w.detach().mean(0)[0].numpy(), rtol=1e-6)


# ------------------------------------------------------------------------------------------------- ERF
@pytest.mark.parametrize("target", ["features", "modulator"])
def test_effective_receptive_field_grows_with_depth(target):
    from focalnet.viz.erf import effective_receptive_field, erf_radius

    model = _tiny()
    x = torch.randn(2, 3, 96, 96)
    radii = []
    for s in range(4):
        erf, centre = effective_receptive_field(model, x, stage=s, target=target)
        assert erf.shape == (96, 96) and (erf >= 0).all()
        torch.testing.assert_close(erf.sum(), torch.tensor(1.0))
        radii.append(erf_radius(erf, centre, 0.5))
        # the pixels of the chosen token itself carry the most gradient
        r = model.feature_info[s]["reduction"]
        peak = divmod(int(erf.argmax()), 96)
        assert abs(peak[0] - centre[0]) <= 2 * r and abs(peak[1] - centre[1]) <= 2 * r
    assert radii[3] > radii[0]
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="outside"):
        effective_receptive_field(model, x, stage=3, location=(9, 0), target=target)


def test_modulator_erf_is_the_focal_aggregation():
    """With one focal level (3x3 depthwise), no global share and 1x1 patches, the modulator ERF is 3x3 tokens."""
    from focalnet.viz.erf import effective_receptive_field

    model = FocalNet(patch_size=1, embed_dim=4, depths=[1], focal_levels=1, focal_windows=3, num_classes=0).eval()
    with torch.no_grad():
        model.layers[0].blocks[0].modulation.f.weight[-1].zero_()  # global gate row -> gate = bias = 0
        model.layers[0].blocks[0].modulation.f.bias[-1] = 0.0
    erf, centre = effective_receptive_field(model, torch.randn(1, 3, 9, 9), stage=0, target="modulator")
    assert centre == (4.0, 4.0)
    support = (erf > 0).nonzero()
    assert support.min(0).values.tolist() == [3, 3] and support.max(0).values.tolist() == [5, 5]


# ------------------------------------------------------------------------------------------------- attention
class _FakeAttentionMaps:
    """The contract of FocalTransformer.forward_attention's maps: a one-hot 'attention' on the query itself."""

    def __init__(self, grid):
        self.grid_size = grid

    def query_map(self, y, x, head=None):
        m = torch.zeros(1, *self.grid_size)
        m[0, y, x] = 1.0
        return m


class _FakeFocalTransformer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList([torch.nn.Module() for _ in range(2)])
        for s in self.layers:
            s.blocks = torch.nn.ModuleList([torch.nn.Identity(), torch.nn.Identity()])
        self.calls = []

    def forward_attention(self, x, which):
        self.calls.append(which)
        (stage, block), = which
        g = (x.shape[-2] // (8 * 2**stage), x.shape[-1] // (8 * 2**stage))
        return torch.zeros(1, 3), {f"layers.{stage}.blocks.{block}": _FakeAttentionMaps(g)}


def test_attention_overlay_follows_the_contract():
    from focalnet.viz.attention import attention_map, has_attention

    model = _FakeFocalTransformer()
    assert has_attention(model) and not has_attention(_tiny())
    x = torch.zeros(1, 3, 64, 64)
    att = attention_map(model, x, which=(-1, -1), query=(0.9, 0.1))
    assert model.calls[-1] == [(1, 1)] and att.block == "layers.1.blocks.1"
    assert att.query_token == (3, 0) and att.grid.shape == (4, 4) and att.image.shape == (64, 64)
    y, xx = divmod(int(att.image.argmax()), 64)
    assert 48 <= y < 64 and 0 <= xx < 16  # the peak is on the query's 16x16 token
    with pytest.raises(ValueError, match="fractions"):
        attention_map(model, x, query=(2, 0))
    with pytest.raises(TypeError, match="forward_attention"):
        attention_map(_tiny(), x)


def test_attention_of_the_real_focal_transformer():
    focalnet = pytest.importorskip("focalnet")
    try:
        ft_cls = focalnet.FocalTransformer
    except (AttributeError, ImportError):
        pytest.skip("focalnet.FocalTransformer has not landed in this checkout")
    if not hasattr(ft_cls, "forward_attention"):
        pytest.skip("FocalTransformer has no forward_attention in this checkout")
    from focalnet.viz.attention import attention_map

    files = golden_files("focal_transformer")
    if not files:
        pytest.skip("no Focal Transformer golden files")
    blob = load_golden(files[0])
    model = ft_cls(**blob["config"]).eval()
    model.load_state_dict(blob["state_dict"])
    x = blob["input"][:1]
    att = attention_map(model, x, which=(0, 0), query=(0.5, 0.5))
    assert att.image.shape == tuple(x.shape[-2:]) and np.isfinite(att.image).all()
    assert att.grid.min() >= 0 and 0 < att.grid.sum() <= 1 + 1e-5
    with torch.no_grad():
        _, maps = model.forward_attention(x, which=[(0, 0)])
    gh, gw = maps["layers.0.blocks.0"].grid_size
    assert att.query_token == (gh // 2, gw // 2)
    expected = maps["layers.0.blocks.0"].query_map(gh // 2, gw // 2)[0]
    torch.testing.assert_close(torch.from_numpy(att.grid), expected)


# ------------------------------------------------------------------------------------------------- sequences
@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_animation_roundtrip(tmp_path, suffix):
    from PIL import Image

    from focalnet.viz.sequence import animate, count_frames, iter_frames

    if suffix == ".mp4":
        pytest.importorskip("imageio_ffmpeg", reason="MP4 needs imageio-ffmpeg (viz extra)")
    rng = np.random.default_rng(0)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        Image.fromarray((rng.random((40, 50, 3)) * 255).astype(np.uint8)).save(folder / f"f{i}.png")
    (folder / "notes.txt").write_text("ignored")
    assert count_frames(folder) == 3
    out = animate(_tiny(), iter_frames(folder), tmp_path / f"maps{suffix}", which=["1", "4"], size=33, fps=5)
    frames = list(iter_frames(out))
    assert len(frames) == 3
    h, w = frames[0].shape[:2]
    # shorter side 33 -> 33x41; the input + 2 overlays side by side with 4-px gaps; + a frame label, column titles,
    # colour scale and random-weights strip (4 x 18 px); H.264 rounds up to even sides
    assert (h, w) in {(33 + 72, 131), (34 + 72, 132)}
    assert list(iter_frames(out, max_frames=2)) and len(list(iter_frames(out, every=2))) == 2
    with pytest.raises(ValueError, match="neither a folder"):
        next(iter_frames(tmp_path / "x.txt"))


# ------------------------------------------------------------------------------------------------- CLI
def test_cli_visualize_writes_figures_npz_and_warns(tmp_path, capsys, monkeypatch):
    from PIL import Image
    from skimage import data

    import focalnet
    from focalnet.cli import main

    # The command's plumbing is under test, not a 28M-parameter network: build a tiny one under the name.
    built = []
    monkeypatch.setattr(focalnet, "create_model", lambda name, device=None: built.append(name) or _tiny())

    Image.fromarray(data.camera()[::4, ::4]).save(tmp_path / "gray.png")
    rgba = np.dstack([data.coffee()[::4, ::4], np.full(data.coffee()[::4, ::4].shape[:2], 200, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    out = tmp_path / "out"
    rc = main(["visualize", str(tmp_path / "gray.png"), str(tmp_path / "rgba.png"), str(tmp_path / "broken.jpg"),
               "--model", "focalnet_tiny_srf", "--size", "64", "--stages", "1", "4", "--erf", "--out", str(out),
               "--animate", str(out / "anim.gif")])
    captured = capsys.readouterr()
    assert rc == 1  # the broken file is reported, the others are written
    assert "broken" in captured.err and "random weights" in captured.err and "random weights" in captured.out
    for stem in ("gray", "rgba"):
        for kind in ("input", "modulation", "gates", "erf"):
            assert (out / f"{stem}_{kind}.png").stat().st_size > 1000
        npz = np.load(out / f"{stem}_maps.npz")
        keys = {"modulator_norm/layers.0.blocks.0", "gates/layers.3.blocks.0", "erf_modulator/layers.3.blocks.0"}
        assert keys | {"image"} <= set(npz.files)
        assert npz["modulator_norm_up/layers.3.blocks.0"].shape == npz["image"].shape[:2]
    assert (out / "kernels.png").exists() and (out / "anim.gif").exists()
    assert built == ["focalnet_tiny_srf"]


def test_cli_visualize_attention_of_a_focal_transformer(tmp_path, capsys, monkeypatch):
    from PIL import Image

    import focalnet
    from focalnet.cli import main

    fake = _FakeFocalTransformer()
    fake.img_size = 64
    monkeypatch.setattr(focalnet, "create_model", lambda name, device=None: fake)
    Image.fromarray((np.random.default_rng(0).random((50, 90)) * 255).astype(np.uint8)).save(tmp_path / "g.png")
    out = tmp_path / "out"
    rc = main(["visualize", str(tmp_path / "g.png"), "--model", "focal_fake", "--query", "0.9", "0.1",
               "--stages", "1.2", "2", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert fake.calls == [[(0, 1)], [(1, 1)]]
    assert (out / "g_attention.png").stat().st_size > 1000
    npz = np.load(out / "g_maps.npz")
    assert npz["image"].shape == (64, 64, 3)  # v1 takes only its training size: resized to a square
    assert npz["attention/layers.0.blocks.1"].shape == (8, 8)
    assert npz["attention_up/layers.1.blocks.1"].shape == (64, 64)
    assert npz["attention/layers.0.blocks.1"][7, 0] == 1.0  # the fake attends to the query token (bottom left)


def test_cli_visualize_with_weights_is_not_stamped(tmp_path, capsys, monkeypatch):
    from PIL import Image

    import focalnet
    from focalnet.cli import main

    monkeypatch.setattr(focalnet, "create_model", lambda name, device=None: _tiny())
    torch.save(_tiny(focal_levels=2).state_dict(), tmp_path / "w.pth")
    torch.save({"unrelated": torch.zeros(2)}, tmp_path / "bad.pth")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "a.png")
    out = tmp_path / "out"
    rc = main(["visualize", str(tmp_path / "a.png"), "--weights", str(tmp_path / "w.pth"), "--stages", "4",
               "--size", "40", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0 and "random weights" not in captured.out + captured.err
    assert str(np.load(out / "a_maps.npz")["weights"]) == str(tmp_path / "w.pth")
    rc = main(["visualize", str(tmp_path / "a.png"), "--weights", str(tmp_path / "bad.pth"), "--out", str(out)])
    assert rc == 1 and "cannot load --weights" in capsys.readouterr().err  # a file that does not fit: runtime


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_cli_video_in_animation_out(tmp_path, capsys, monkeypatch, suffix):
    import focalnet
    from focalnet.cli import main
    from focalnet.viz.sequence import iter_frames, write_animation

    if suffix == ".mp4":
        pytest.importorskip("imageio_ffmpeg", reason="MP4 needs imageio-ffmpeg (viz extra)")
    monkeypatch.setattr(focalnet, "create_model", lambda name, device=None: _tiny())
    rng = np.random.default_rng(0)
    clip = write_animation([(rng.random((48, 64, 3)) * 255).astype(np.uint8) for _ in range(5)],
                           tmp_path / f"clip{suffix}", fps=10, label_frames=False)
    out = tmp_path / "out"
    rc = main(["visualize", str(clip), "--every", "2", "--no-figures", "--stages", "2", "--size", "48",
               "--animate", str(out / f"maps{suffix}"), "--out", str(out)])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    frames = list(iter_frames(out / f"maps{suffix}"))
    assert len(frames) == 3 and frames[0].shape[1] == 2 * 64 + 4  # frames 0, 2, 4: input | overlay
    assert sorted(p.name for p in out.iterdir()) == [f"maps{suffix}"]  # --no-figures: the animation only
    # ... and the command says so instead of claiming it wrote maps to the folder
    assert "no per-image files written" in printed.out and "wrote maps" not in printed.out
    assert "3 frames" in printed.out
    rc = main(["visualize", str(clip), "--no-figures", "--out", str(tmp_path / "nothing")])
    assert rc == 2 and "would write nothing" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()


def test_cli_stages_are_numbered_from_1_like_the_titles(tmp_path, capsys, monkeypatch):
    from PIL import Image

    import focalnet
    from focalnet.cli import main

    monkeypatch.setattr(focalnet, "create_model", lambda name, device=None: _tiny())
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "a.png")
    out = tmp_path / "out"
    rc = main(["visualize", str(tmp_path / "a.png"), "--stages", "1", "3.2", "--size", "40", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    npz = np.load(out / "a_maps.npz")
    assert {k for k in npz.files if k.startswith("gates/")} == {"gates/layers.0.blocks.0", "gates/layers.2.blocks.1"}
    rc = main(["visualize", str(tmp_path / "a.png"), "--stages", "0", "--out", str(out)])
    assert rc == 2 and "numbered from 1" in capsys.readouterr().err
    rc = main(["visualize", str(tmp_path / "a.png"), "--stages", "5", "--out", str(out)])
    assert rc == 2 and "stage 5 does not exist" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------- figures
def _maps():
    img = (np.random.default_rng(0).random((48, 80, 3)) * 255).astype(np.uint8)
    return compute_maps(_tiny(), img, size=48)


def _image_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_images() and ax.get_label() != "<colorbar>"]


def test_figures_have_colour_bars_titles_and_nothing_clipped():
    from focalnet.viz.figures import gates_figure, heatmap_figure, modulation_figure, text_outside_figure

    maps = _maps()
    long = "focal_transformer_tiny_conv: attention of the query (+) over fine and pooled keys, stage 4 block 2"
    figs = {
        "modulation": modulation_figure(maps, title="focalnet_tiny_srf: modulator L2 norm"),
        "gates": gates_figure(maps),
        "attention": heatmap_figure(maps.image, {"attention, stage 4 block 2": maps.blocks[-1].modulator_norm_up},
                                    point=(10.0, 20.0), meaningful=False, title=long),
    }
    for name, fig in figs.items():
        assert text_outside_figure(fig) == [], name  # e.g. the Focal Transformer title is wrapped, not clipped
        assert fig.get_suptitle(), name
        panels = _image_axes(fig)
        assert all(ax.get_title() for ax in panels), name
        maps_panels = [ax for ax in panels if not ax.get_title().startswith("input")]
        colorbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
        assert len(colorbars) == len(maps_panels) > 0, name  # one colour bar per map panel
    assert "RANDOM WEIGHTS" in " ".join(t.get_text() for t in figs["attention"].texts)
    # gates are drawn over the image: every gate panel holds the photo and the translucent map
    gate_panels = [ax for ax in _image_axes(figs["gates"]) if "gate" in ax.get_title()]
    assert len(gate_panels) == 4 * 3
    for ax in gate_panels:
        photo, gate = ax.get_images()
        assert photo.get_array().shape == maps.image.shape and 0 < gate.get_alpha() < 1


def test_kernels_figure_true_relative_size_shared_scale_rows_per_stage():
    from focalnet.viz.figures import kernels_figure, text_outside_figure

    model = _tiny(focal_levels=[1, 2, 3, 2], focal_windows=[3, 3, 1, 5])
    fig = kernels_figure(focal_kernels(model), meaningful=False)
    assert text_outside_figure(fig) == []
    panels = _image_axes(fig)
    assert len(panels) == 1 + 2 + 3 + 2
    kmax = 7  # stage 4, level 2: 5 + 2
    clims = set()
    for ax in panels:
        (im,) = ax.get_images()
        k = im.get_array().shape[0]
        left, right, _, _ = im.get_extent()
        assert right - left == k  # drawn k units wide ...
        assert ax.get_xlim() == (-kmax / 2, kmax / 2)  # ... on axes that all span the largest kernel
        clims.add(im.get_clim())
        stage = int(ax.get_title().split(",")[0].split()[-1])
        row = round(1 - ax.get_position().y1, 1)  # panels of one stage share a row
        assert ax.get_title().endswith(f"{k}x{k}")
        assert (stage, row) is not None
    assert len(clims) == 1  # one shared colour scale ...
    assert len([ax for ax in fig.axes if ax.get_label() == "<colorbar>"]) == 1  # ... with one colour bar
    rows = {}
    for ax in panels:
        rows.setdefault(int(ax.get_title().split(",")[0].split()[-1]), set()).add(round(ax.get_position().y0, 3))
    assert all(len(ys) == 1 for ys in rows.values()) and len({min(ys) for ys in rows.values()}) == 4


def test_gif_timing_letterbox_and_frame_labels(tmp_path):
    from PIL import Image

    from focalnet.viz.sequence import write_animation

    wide = np.zeros((40, 60, 3), np.uint8)
    wide[..., 0] = 255  # red, 3:2
    tall = np.zeros((60, 40, 3), np.uint8)
    tall[..., 2] = 255  # blue, 2:3
    path = write_animation([wide, tall, wide], tmp_path / "a.gif", fps=4, captions=["a", "b", "c"])
    with Image.open(path) as im:
        assert im.n_frames == 3
        durations = []
        frames = []
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(im.info["duration"])
            frames.append(np.asarray(im.convert("RGB")))
    assert durations == [250, 250, 250]  # milliseconds: 1000 / fps, not 250 seconds
    band = 18
    assert all(f.shape == (40 + band, 60, 3) for f in frames)
    second = frames[1][band:]
    blue = (second[..., 2] > 200) & (second[..., 0] < 60)
    cols = np.flatnonzero(blue.any(0))
    # 60x40 fitted into 40x60 keeps its aspect: 40 tall, ~27 wide, centred between black bars
    assert blue.any(1).sum() == 40 and 25 <= len(cols) <= 29 and abs(cols.mean() - 29.5) <= 1.5
    assert second[:, :10].max() < 40 and second[:, -10:].max() < 40
    assert not np.array_equal(frames[0][:band], frames[2][:band])  # "frame 1/3: a" vs "frame 3/3: c"
    fast = write_animation([wide, wide[::-1, ::-1] // 2], tmp_path / "b.gif", fps=10, label_frames=False)
    with Image.open(fast) as im:
        assert im.info["duration"] == 100 and im.size == (60, 40)
    with pytest.raises(ValueError, match="fps"):
        write_animation([wide], tmp_path / "c.gif", fps=0)


# ------------------------------------------------------------------------------------------------- dense models
def _tiny_detector():
    pytest.importorskip("torchvision")
    from focalnet.det.models import build_detector

    torch.manual_seed(0)
    return build_detector("mask_rcnn", "focalnet_tiny_srf", num_classes=3, focal_windows=3,
                          backbone_overrides=dict(embed_dim=16, depths=[1, 1, 2, 1]), fpn_channels=16,
                          min_size=64, max_size=64, box_head_dim=32, mask_head_dims=(16,)).eval()


def test_backbone_inside_a_detector_checkpoint_gives_the_same_maps(tmp_path):
    from focalnet.viz.dense import backbone_from_checkpoint

    det = _tiny_detector()
    path = tmp_path / "last.pt"
    # the engine's checkpoint layout: model + optimizer + EMA state dicts, task name, config
    torch.save({"format_version": 1, "task": "detection", "model": det.state_dict(), "ema": det.state_dict(),
                "optimizer": torch.optim.SGD(det.parameters(), lr=0.1).state_dict(),
                "config": {"model": {"arch": "mask_rcnn"}}}, path)
    dense = backbone_from_checkpoint(path)
    assert dense.prefix == "backbone.body.body." and dense.variant is None
    assert dense.description == "FocalNet backbone (custom) of last.pt [detection]"
    x = torch.randn(1, 3, 64, 96)
    body = det.backbone.body.body  # FocalNetFPN -> FocalNetBackbone -> FocalNet
    _, ref = modulation_maps(body, x, which=[(0, 0), (3, 0)])
    _, got = modulation_maps(dense.model, x, which=[(0, 0), (3, 0)])
    for k in ref:
        torch.testing.assert_close(got[k].modulator, ref[k].modulator, rtol=0, atol=0)
        torch.testing.assert_close(got[k].gates, ref[k].gates, rtol=0, atol=0)


def test_backbone_flags_without_a_trace_come_from_the_stored_config(tmp_path):
    from focalnet.backbones import FocalNetBackbone
    from focalnet.viz.dense import backbone_from_checkpoint

    torch.manual_seed(0)
    body = FocalNet(embed_dim=8, depths=[1, 1, 1, 1], focal_levels=2, num_classes=0, normalize_modulator=True)
    body.norm = torch.nn.Identity()
    seg = torch.nn.Module()
    seg.backbone = FocalNetBackbone(body, out_indices=(0, 1, 2, 3))
    seg.decode = torch.nn.Conv2d(8, 3, 1)
    x = torch.randn(1, 3, 64, 64)
    _, ref = modulation_maps(body.eval(), x, which=[(2, 0)])
    key = "layers.2.blocks.0.modulation"
    for config, same in (({"model": {"backbone": {"normalize_modulator": True}}}, True), ({}, False)):
        torch.save({"state_dict": seg.state_dict(), "config": config}, tmp_path / "seg.pt")
        dense = backbone_from_checkpoint(tmp_path / "seg.pt")
        assert dense.prefix == "backbone.body."
        _, got = modulation_maps(dense.model, x, which=[(2, 0)])
        assert torch.allclose(got[key].modulator, ref[key].modulator) == same
    torch.save({"model": {"decode.weight": torch.zeros(3, 8, 1, 1)}}, tmp_path / "none.pt")
    with pytest.raises(ValueError, match="holds no FocalNet backbone"):
        backbone_from_checkpoint(tmp_path / "none.pt")


def test_cli_visualize_checkpoint_of_a_detector(tmp_path, capsys):
    from PIL import Image

    from focalnet.cli import main

    det = _tiny_detector()
    ckpt = tmp_path / "last.pt"
    torch.save({"format": "focalnet.detect/1", "model": det.state_dict()}, ckpt)
    Image.fromarray((np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    out = tmp_path / "out"
    rc = main(["visualize", str(tmp_path / "a.png"), "--checkpoint", str(ckpt), "--size", "48", "--out", str(out)])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert "FocalNet backbone (custom) of last.pt" in printed.out and "random weights" not in printed.out + printed.err
    assert (out / "a_modulation.png").stat().st_size > 1000 and (out / "kernels.png").exists()
    assert str(np.load(out / "a_maps.npz")["weights"]) == str(ckpt)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    rc = main(["visualize", str(tmp_path / "a.png"), "--checkpoint", str(tmp_path / "junk.pt"), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and "not a readable checkpoint" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------------- ViT comparison
def _tiny_vit():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    return timm.models.vision_transformer.VisionTransformer(img_size=32, patch_size=8, embed_dim=16, depth=2,
                                                            num_heads=2, num_classes=4).eval()


def test_vit_cls_attention_and_rollout():
    from focalnet.viz.vit import vit_attention

    vit = _tiny_vit()
    fused = [b.attn.fused_attn for b in vit.blocks]
    x = torch.randn(1, 3, 32, 32)
    att = vit_attention(vit, x)
    assert att.cls.shape == att.rollout.shape == (4, 4) and att.patch == 8
    assert 0 < att.cls.sum() < 1 and 0 < att.rollout.sum() <= 1 + 1e-6  # the CLS token keeps the rest
    assert [b.attn.fused_attn for b in vit.blocks] == fused  # restored
    with torch.no_grad():  # zero queries and keys: every token attends uniformly to all 17
        for b in vit.blocks:
            b.attn.qkv.weight[: 2 * 16].zero_()
            b.attn.qkv.bias[: 2 * 16].zero_()
    att = vit_attention(vit, x)
    np.testing.assert_allclose(att.cls, np.full((4, 4), 1 / 17), rtol=1e-5)
    # rollout of uniform attention: 0.5 * uniform + 0.5 * I per block; the CLS row over patches stays uniform
    a = 0.5 * np.full((17, 17), 1 / 17) + 0.5 * np.eye(17)
    np.testing.assert_allclose(att.rollout.ravel(), (a @ a)[0, 1:], rtol=1e-5)


def test_cli_compare_vit_writes_the_figure(tmp_path, capsys, monkeypatch):
    from PIL import Image

    import focalnet
    import focalnet.viz.vit as vitmod
    from focalnet.cli import main

    monkeypatch.setattr(focalnet, "create_model", lambda name, device=None: _tiny())
    vit = _tiny_vit()
    monkeypatch.setattr(vitmod, "create_vit", lambda name, weights=None, device="cpu": vit)
    Image.fromarray((np.random.default_rng(0).random((40, 60, 3)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    out = tmp_path / "out"
    rc = main(["visualize", str(tmp_path / "a.png"), "--compare-vit", "vit_tiny", "--size", "32", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert (out / "a_vs_vit.png").stat().st_size > 5000


# ------------------------------------------------------------------------------------------------- detections
def test_detection_labels_never_overlap_and_the_legend_names_the_classes():
    from focalnet.viz.detections import draw_detections

    rng = np.random.default_rng(0)
    img = (rng.random((64, 96, 3)) * 255).astype(np.uint8)
    # eight boxes piled on one spot: the labels of a naive drawing would all sit on top of each other
    boxes = np.array([[10 + i, 12 + i, 50 + i, 40 + i] for i in range(8)], dtype=float)
    labels, scores = [0, 1, 2, 0, 1, 2, 0, 1], np.linspace(0.95, 0.5, 8)
    masks = np.zeros((8, 64, 96), bool)
    masks[:, 20:30, 20:40] = True
    pic, placed = draw_detections(img, boxes, labels, scores, ["horse", "coin", "logo"], masks=masks,
                                  return_label_boxes=True)
    assert pic.dtype == np.uint8 and pic.shape[1] == 96 * 6 and pic.shape[0] > 64 * 6  # enlarged x6, + legend
    assert 2 <= len(placed) <= 8
    for i, a in enumerate(placed):
        assert a[0] >= 0 and a[1] >= 0 and a[2] <= 96 * 6 and a[3] <= 64 * 6
        for b in placed[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    legend = pic[64 * 6:]
    assert (legend < 250).any()  # the legend strip is drawn (swatches and names)
    from focalnet.viz.segments import class_colours

    pal = class_colours(3)
    for c in range(3):  # every class present has its swatch in the legend
        assert (np.abs(legend.astype(int) - pal[c]).sum(-1) == 0).any()
    empty = draw_detections(img, np.zeros((0, 4)), [], [], ["horse"], legend=True)
    assert empty.shape[1] == 96 * 6
