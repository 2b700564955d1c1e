"""Bases as declarations (core/bases): MobileNetV3-Large next to EfficientNet-B0. Its twists equal what timm builds
(state_dict keys and shapes, MACs from torch's flop counter, parameters), and the formula, pretrained loading,
inheritance, freezing and timm's registry take it like any base."""
import os
import warnings

import pytest
import timm
import torch
from hypothesis import given, settings, strategies as st
from timm.models import mobilenetv3 as timm_mnv3
from torch.utils.flop_counter import FlopCounterMode

import tinynet_zoo as tz
from tinynet_zoo.core.bases import BASES, get_base
from tinynet_zoo.core.module import build_module
from tinynet_zoo.training.freezing import freeze
from tinynet_zoo.weights.inherit import inherit, leading_importance, measure_activations, weight_importance

MNV3 = "mobilenetv3_large_100"


def shapes(model):
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def meta_macs(model, resolution):
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.zeros(1, 3, resolution, resolution, device="meta"))
    return counter.get_total_flops() // 2


def test_registry_collects_every_base_module_and_names_a_close_match():
    assert {"efficientnet_b0", "efficientnet_lite0", MNV3} <= set(BASES)
    assert get_base(MNV3).timm.model == "MobileNetV3" and get_base(MNV3).checkpoint == "mobilenetv3_large_100.ra_in1k"
    with pytest.raises(tz.InvalidArgumentError, match="mobilenetv3_large_100"):
        tz.Twist(1.0, 1.0, 1.0, 224, base="mobilenetv3_large")


def test_the_base_twist_is_timms_mobilenetv3_large_100():
    twist = tz.model_info(MNV3).twist
    assert (twist.r, twist.d, twist.w, twist.rules) == (1.0, 1.0, 1.0, "mobilenetv3")
    with torch.device("meta"):
        ours, theirs = build_module(twist.arch), timm.create_model(MNV3)
    assert type(ours) is type(theirs) and shapes(ours) == shapes(theirs)
    assert str(ours) == str(theirs)  # same activations, SE gates and head, layer by layer
    assert twist.macs == meta_macs(theirs, 224) == 216_589_760
    assert twist.params == sum(p.numel() for p in theirs.parameters()) == 5_483_032


twists = st.builds(tz.Twist, r=st.just(1.0), d=st.floats(0.2, 2.0), w=st.floats(0.1, 1.6),
                   resolution=st.sampled_from([32, 64, 96]), base=st.just(MNV3),
                   rules=st.sampled_from(["mobilenetv3", "tinynet", "lite"]))


@settings(max_examples=6, deadline=None)
@given(twist=twists)
def test_random_mobilenetv3_twists_equal_timm(twist):
    with torch.device("meta"):
        ours = build_module(twist.arch)
        if twist.rules == "mobilenetv3":  # timm's own generator at the same width and depth
            theirs = timm_mnv3._gen_mobilenet_v3(MNV3, twist.w, twist.d)
            assert shapes(ours) == shapes(theirs), twist
    assert twist.macs == meta_macs(ours, twist.resolution), twist
    assert twist.params == sum(p.numel() for p in ours.parameters()), twist


def test_for_flops_on_mobilenetv3_transfers_the_tiny_formula_and_leaves_b0_unchanged():
    tiny, giant = tz.for_flops(50e6, base=MNV3), tz.for_flops(50e6, base=MNV3, formula="giant")
    assert (tiny.base, tiny.rules, giant.base, giant.rules) == (MNV3, "mobilenetv3", MNV3, "mobilenetv3")
    assert 49.5e6 <= tiny.macs <= 50e6 and 49.5e6 <= giant.macs <= 50e6
    assert (tiny.r, tiny.d, tiny.resolution) == (0.796133, 0.829327, 188)  # the B0 curves at 50M / 216.6M
    assert tiny.r > giant.r and tiny.d > giant.d and tiny.w < giant.w  # resolution and depth before width
    b0 = tz.for_flops(50e6)  # the values before bases were declared per module
    assert (b0.r, b0.d, b0.w, b0.resolution, b0.macs) == (0.673894, 0.689371, 0.5356760871294719, 154, 49_802_384)


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    return tz.create(tz.Twist(1.0, 1.0, 1.0, 64, base=MNV3, rules="mobilenetv3"), num_classes=10).eval()


def test_inheriting_the_whole_teacher_gives_its_logits(teacher):
    arch = tz.Twist(1.0, 1.0, 1.0, 64, base=MNV3, rules="mobilenetv3").arch
    student = tz.create(tz.Twist(1.0, 1.0, 1.0, 64, base=MNV3, rules="mobilenetv3"), num_classes=10).eval()
    student.load_state_dict(inherit(teacher.state_dict(), arch, student.state_dict(), arch,
                                    weight_importance(teacher.state_dict(), arch)))
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(student(x), teacher(x), rtol=0, atol=0)


def test_inheriting_a_narrower_shallower_mobilenetv3_slices_every_group(teacher):
    teacher_arch = tz.Twist(1.0, 1.0, 1.0, 64, base=MNV3, rules="mobilenetv3").arch
    twist = tz.Twist(1.0, 0.6, 0.75, 64, base=MNV3, rules="mobilenetv3")
    student = tz.create(twist, num_classes=10)
    state = inherit(teacher.state_dict(), teacher_arch, student.state_dict(), twist.arch,
                    leading_importance(teacher_arch))
    student.load_state_dict(state)  # strict: every key and shape fits
    last, head = twist.arch.blocks[-1].out_chs, twist.arch.head_chs
    assert (last, head) == (720, 1280)
    assert torch.equal(state["conv_head.weight"], teacher.state_dict()["conv_head.weight"][:, :720])
    assert torch.equal(state["conv_head.bias"], teacher.state_dict()["conv_head.bias"])
    assert torch.equal(state["blocks.6.0.conv.weight"], teacher.state_dict()["blocks.6.0.conv.weight"][:720, :120])
    views = [torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))]
    scores, means = measure_activations(teacher, teacher_arch, views)
    assert scores["head"].shape == (1280,) and "conv_head.weight" in means and "blocks.6.0.conv.weight" in means
    assert set(scores) == set(weight_importance(teacher.state_dict(), teacher_arch))


def test_freezing_by_stage_and_timm_registration_take_mobilenetv3(teacher):
    twist = tz.for_flops(20e6, base=MNV3)
    model = tz.create(twist, num_classes=10)
    frozen = freeze(model, "blocks.3")
    assert frozen[:3] == ["conv_stem", "bn1", "blocks.0.0"] and frozen[-1] == f"blocks.3.{twist.arch.depths[3] - 1}"
    assert not model.blocks[3][0].conv_pw.weight.requires_grad and model.conv_head.weight.requires_grad
    tz.register_timm()
    built = timm.create_model("tinynet_twist", twist=twist.to_dict(), num_classes=10)
    assert type(built).__name__ == "MobileNetV3" and shapes(built) == shapes(tz.create(twist, num_classes=10))


def test_pretrained_mobilenetv3_loads_from_the_hub_cache(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(3)
    reference = timm.create_model(MNV3).eval()
    root = tmp_path / "models--timm--mobilenetv3_large_100.ra_in1k"
    snap = root / "snapshots" / ("c" * 40)
    snap.mkdir(parents=True)
    save_file(reference.state_dict(), str(snap / "model.safetensors"))
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text("c" * 40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the manifest pins no hash for this file: it warns and loads
        model = tz.create(MNV3, pretrained=True, cache_dir=tmp_path).eval()
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)
    assert os.path.exists(snap / "model.safetensors")


@pytest.mark.slow
def test_a_search_on_mobilenetv3_fits_a_formula_that_for_flops_serves(tmp_path):
    from tinynet_zoo.core.formula import load_formula
    from tinynet_zoo.search.analysis import search_report
    from tinynet_zoo.search.run import run_search

    for label in "ab":
        (tmp_path / "data" / label).mkdir(parents=True)
    out = tmp_path / "run"
    run_search(tmp_path / "data", ["12M", "16M", "21M"], 12, out, workers=0, base=MNV3, rules="mobilenetv3",
               base_resolution=96, epochs=1, train_fn=planted_train)
    report = search_report(out, plot=False)
    assert report.trials == 12 and report.spearman["r"] == pytest.approx(1.0)
    assert load_formula(report.files["formula"]).base == MNV3
    twist = tz.for_flops("15M", base=MNV3, formula=report.files["formula"])
    assert 0.99 * 15e6 <= twist.macs <= 15e6 and (twist.base, twist.rules) == (MNV3, "mobilenetv3")
    assert abs(twist.resolution - twist.r * 96) <= 12  # r relative to the search's 96 px


def planted_train(twist, config):
    """Accuracy rising with r only (a deterministic stand-in for training)."""
    return {"top1": 50 + 40 * twist.r, "latency_ms": 1.0}


def test_every_mobilenetv3_tensor_has_its_channel_groups(teacher):
    from tinynet_zoo.weights.channels import group_sizes, key_groups

    arch = tz.Twist(1.0, 1.0, 1.0, 64, base=MNV3, rules="mobilenetv3").arch
    groups, sizes = key_groups(arch), group_sizes(arch, num_classes=10)
    tensors = {k: v for k, v in teacher.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert set(groups) == set(tensors)  # conv-bn-act stage and pooled head (conv_head.bias, no bn2) included
    for key, dims in groups.items():
        assert all(group is None or sizes[group] == n for group, n in zip(dims, tensors[key].shape)), key


def test_the_docs_formula_table_is_what_the_code_computes():
    from pathlib import Path

    import bases as bases_bench  # benchmarks/bases.py (benchmarks/ is on the path: conftest.py)

    page = (Path(__file__).resolve().parents[1] / "docs" / "bases.md").read_text()
    begin, end = bases_bench.FORMULAS
    documented = page[page.index(begin) + len(begin):page.index(end)].strip()
    assert documented == bases_bench.formula_table()


@pytest.mark.slow  # ranks channels on views of the digits four ways
def test_inherit_benchmark_cuts_digit_students_with_the_teachers_head(tmp_path):
    import inherit as inherit_bench  # benchmarks/inherit.py, as benchmarks/bases.py uses it on a digits teacher
    from sample_data import export_digits

    data = export_digits(tmp_path / "digits", size=32, limit=40)
    twist = tz.Twist(1.0, 0.5, 0.5, 32, base=MNV3, rules="mobilenetv3")
    torch.manual_seed(0)
    teacher = tz.create(twist, num_classes=10).eval()
    calibration, held = inherit_bench.folder_views(str(data), 20, 32)
    assert tuple(calibration.shape) == tuple(held.shape) == (20, 3, 32, 32)
    assert {m.num_classes for m in inherit_bench.students(teacher, twist, calibration).values()} == {10}
    scores = inherit_bench.agreement(teacher, twist, calibration, held)  # a full-width cut is the teacher itself
    assert [scores[k] for k in ("leading slice", "importance from weights", "importance from views",
                                "importance from views + mean compensation")] == [100.0] * 4
