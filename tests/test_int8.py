"""int8 export: calibration data and its split, the accuracy gate (pass and refuse), the sensitivity search that
keeps layers float, and the written files run by their engines."""
import logging

import numpy as np
import pytest
import torch

import tinynet_zoo as tz
from tinynet_zoo.deploy import int8_gate, quantize
from tinynet_zoo.deploy.int8_gate import (Int8Data, _simulated_int8, candidate_groups, int8_data, judge, logits,
                                          search, sensitivity)
from tinynet_zoo.deploy.quantize import file_logits
from sample_data import export_digits

RES = 32
TWIST = tz.Twist(0.3, 0.4, 0.35, RES)
CLASSES = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return export_digits(tmp_path_factory.mktemp("digits32"), size=RES, limit=64)


def small_model(labelled=True):
    torch.manual_seed(0)
    model = tz.create(TWIST, num_classes=10).eval()
    with torch.no_grad():
        model.classifier.weight.normal_(0, 0.5)
    if labelled:
        model.pretrained_cfg["label_names"] = CLASSES
    return model


def test_class_folders_named_like_the_classes_make_labelled_data(digits):
    data = int8_data(digits, CLASSES, RES)
    assert (len(data.calibration), len(data.held_out)) == (32, 32)
    assert data.labels is not None and sorted(set(data.labels.tolist())) == list(range(10))
    # the same folder for a model without class names: no labels, the same images
    plain = int8_data(digits, None, RES)
    assert plain.labels is None and len(plain.held_out) == 32


def test_too_few_images_are_refused(tmp_path):
    few = export_digits(tmp_path / "few", size=RES, limit=20)
    with pytest.raises(tz.DataError, match=r"gave 10 calibration and 10 held-out image\(s\); at least 16 of each"):
        int8_data(few, CLASSES, RES)


def test_judge_applies_the_rule():
    reference = np.eye(4)[[0, 1, 2, 3] * 25]  # 100 images, float right on all
    quantized = reference.copy()
    quantized[:2] = np.eye(4)[[3, 3]]  # int8 wrong on 2 of them
    labels = torch.tensor([0, 1, 2, 3] * 25)
    assert judge(reference, quantized, labels, 2.0, 0.98).passed  # a 2-point drop, allowed 2
    strict = judge(reference, quantized, labels, 1.0, 0.98)
    assert (strict.passed, strict.float_top1, strict.int8_top1, strict.agreement) == (False, 100.0, 98.0, 98.0)
    assert judge(reference, quantized, None, 1.0, 0.98).passed  # unlabelled: 98% agreement
    assert not judge(reference, quantized, None, 1.0, 0.99).passed


def test_search_keeps_the_most_sensitive_groups_float_then_refuses_with_the_numbers(digits):
    model = small_model()
    data = int8_data(digits, None, RES)  # unlabelled: judged by agreement with float
    groups = candidate_groups(model)
    assert groups["first"] == ["conv_stem", "bn1"]
    assert groups["last"] == ["conv_head", "bn2", "global_pool", "classifier"]  # the pooled activation too
    stages = [f"blocks.{i}" for i in range(len(model.blocks))]
    assert [key for key in groups if key.count(".") == 1] == stages and all(groups[s] == [s] for s in stages)
    assert all(name.endswith(".se") for key, names in groups.items() if key not in ["first", "last", *stages]
               for name in names)
    scores = sensitivity(model, data.calibration)
    assert set(scores) == set(groups) and all(v >= 0 for v in scores.values())
    order = sorted(scores, key=lambda g: -scores[g])
    asked = []

    def build(float_modules):  # an int8 file that disagrees with float everywhere until all groups are float
        asked.append(float_modules)
        with torch.inference_mode():
            logits = model(data.held_out).numpy()
        return logits if len(float_modules) == sum(map(len, groups.values())) else -logits

    passed, tries = search(model, data, build, 1.0, 0.98)
    sizes = [len(t.float_layers) for t in tries]
    assert sizes[0] == 0 and sizes[-1] == len(groups) and passed.passed
    assert list(tries[1].float_layers) == order[:1]
    with torch.inference_mode():
        wrong = np.eye(10)[(model(data.held_out).argmax(1).numpy() + 1) % 10]  # never float's class
    with pytest.raises(tz.AccuracyLossError, match=r"nothing was written: top-1 agreement with float 0.0% on 32 "
                                                   r"held-out images;.*the rule: top-1 agreement with float >= 98%"):
        search(model, data, lambda float_modules: wrong, 1.0, 0.98)


def test_a_model_without_squeeze_excite_gets_every_stage_as_a_candidate():
    lite = tz.create(tz.Twist(0.3, 0.4, 0.35, RES, base="efficientnet_lite0"), num_classes=10)
    assert all(type(m) is torch.nn.Identity for name, m in lite.named_modules() if name.endswith(".se"))
    groups = candidate_groups(lite)  # old: first, last and the identity placeholders, which hold no layer
    assert list(groups) == ["first", "last", *(f"blocks.{i}" for i in range(len(lite.blocks)))]


def test_a_loader_is_read_only_for_the_calibration_and_held_out_images():
    read = []

    def loader():  # 1600 images in batches of 8; the gate keeps 256 + 1000
        for i in range(200):
            read.append(i)
            yield torch.randn(8, 3, RES, RES), torch.arange(8) % 10

    data = int8_data(loader(), CLASSES, RES)
    assert (len(data.calibration), len(data.held_out), len(data.labels)) == (256, 1000, 1000)
    assert len(read) == 157  # 1256 images; old: all 200 batches read and 1344 images held out


def test_loader_images_of_another_size_are_refused_by_name():
    with pytest.raises(tz.InvalidArgumentError, match=r"calibration batch 0 has 48x40 images but the model takes "
                                                      r"32x32"):
        int8_data([torch.randn(40, 3, 48, 40)], None, RES)


def test_the_gate_runs_the_model_a_batch_at_a_time(monkeypatch):
    from tinynet_zoo.deploy import int8_gate

    monkeypatch.setattr(int8_gate, "candidate_groups", lambda model: {"first": ["conv_stem"]})  # one group: quick
    model = small_model()
    data = Int8Data(torch.randn(70, 3, RES, RES), torch.randn(100, 3, RES, RES), None)
    with torch.inference_mode():
        whole = model(data.held_out)
    sizes = []
    model.conv_stem.register_forward_pre_hook(lambda m, args: sizes.append(len(args[0])))
    assert torch.allclose(logits(model, data.held_out), whole, atol=1e-5)
    passed, tries = search(model, data, lambda float_modules: whole.numpy(), 1.0, 0.98)
    assert passed.passed and passed.images == 100
    sensitivity(model, data.calibration)
    assert sizes == [64, 36] * 2 + [64, 6] * 3  # old: passes of 100 and 70 images


def test_simulated_int8_restores_the_model_when_a_forward_pass_raises():
    model = small_model()
    weight = model.conv_stem.weight.detach().clone()

    def fail(module, args):
        raise RuntimeError("out of memory")

    model.classifier.register_forward_pre_hook(fail)
    with pytest.raises(RuntimeError, match="out of memory"):
        with _simulated_int8(model, [model.conv_stem], torch.randn(2, 3, RES, RES)):
            pass
    assert not model.conv_stem._forward_pre_hooks and torch.equal(model.conv_stem.weight, weight)  # old: hook left


def fake_engines(monkeypatch, model):
    """int8 builds that write placeholder files and return the model's own logits (no engine runs)."""
    monkeypatch.setattr(quantize, "onnx_int8", lambda source, target, *args: target.write_bytes(b"qdq"))
    monkeypatch.setattr(quantize, "openvino_int8", lambda source, xml, *args: [xml.write_bytes(b"xml"),
                                                                         xml.with_suffix(".bin").write_bytes(b"bin")])
    monkeypatch.setattr(quantize, "file_logits", lambda path, format, images, batch: logits(model, images).numpy())


@pytest.mark.parametrize("format, name, files", [("onnx", "m.ONNX", ["int8.onnx"]),
                                                  ("openvino", "m.XML", ["int8.bin", "int8.xml"])])
def test_int8_places_the_file_it_wrote_whatever_the_suffixs_case(digits, tmp_path, monkeypatch, format, name, files):
    model, placed = small_model(), []
    fake_engines(monkeypatch, model)
    place = lambda pairs: placed.extend((source.name, source.exists(), target.name) for source, target in pairs)
    report = quantize.write_int8(model, tmp_path / name, format, RES, None, digits, 1.0, 0.98,
                                 lambda folded, path: path.write_bytes(b"float"), place)
    assert sorted(source for source, _, _ in placed) == files and all(exists for _, exists, _ in placed)
    assert report["int8"]["passed"] and report["max_abs_diff"] == 0.0  # old: int8.ONNX, which was never written


def test_int8_accepts_a_plain_torch_module(digits, tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(4, 10)).eval()
    fake_engines(monkeypatch, model)
    report = quantize.write_int8(model, tmp_path / "m.onnx", "onnx", RES, None, digits, 1.0, 0.98,
                                 lambda folded, path: path.write_bytes(b"float"), lambda pairs: None)
    assert report["int8"]["labelled"] is False and report["int8"]["images"] == 32  # old: AttributeError


@pytest.mark.parametrize("level", [logging.NOTSET, logging.CRITICAL])
def test_onnx_quantization_keeps_the_users_logging_disable_level(tmp_path, monkeypatch, level):
    import onnxruntime.quantization

    seen = []
    monkeypatch.setattr(onnxruntime.quantization, "quantize_static",
                        lambda *args, **kwargs: seen.append(logging.root.manager.disable))
    logging.disable(level)
    try:
        quantize.onnx_int8(tmp_path / "f.onnx", tmp_path / "q.onnx", torch.randn(2, 3, 8, 8), 1, ())
        after = logging.root.manager.disable
    finally:
        logging.disable(logging.NOTSET)
    assert seen == [max(level, logging.WARNING)] and after == level  # old: NOTSET after, whatever the user's level


@pytest.mark.slow
def test_pte_int8_is_written_when_it_keeps_accuracy_and_reports_the_measured_numbers(digits, tmp_path):
    model = small_model()
    report = tz.export(model, tmp_path / "m.pte", precision="int8", calibration=digits, max_drop=100.0)
    assert report.variant == "int8" and report.int8["labelled"] and report.int8["images"] == 32
    data = int8_data(digits, CLASSES, RES)
    quantized = file_logits(report.path, "pte", data.held_out, 1)
    with torch.inference_mode():
        reference = model(data.held_out).numpy()
    agreement = 100.0 * float((quantized.argmax(1) == reference.argmax(1)).mean())
    assert report.int8["agreement"] == pytest.approx(agreement)
    assert report.max_abs_diff == pytest.approx(float(np.abs(quantized - reference).max()), rel=1e-5)
    fp32 = tz.export(model, tmp_path / "f.pte")
    assert report.file_bytes < fp32.file_bytes / 2


@pytest.mark.slow
def test_refused_int8_leaves_no_file(digits, tmp_path, monkeypatch):
    model = small_model(labelled=False)
    every = int8_gate.candidate_groups
    monkeypatch.setattr(int8_gate, "candidate_groups",  # three tries (all int8, one float, both): enough to refuse
                        lambda m: dict(list(every(m).items())[:2]))
    with pytest.raises(tz.AccuracyLossError, match=r"top-1 agreement with float .*% on 32 held-out images.*the rule: "
                                                   r"top-1 agreement with float >= 100%"):
        tz.export(model, tmp_path / "m.onnx", precision="int8", calibration=digits, min_agreement=1.0)
    assert list(tmp_path.iterdir()) == []  # the tries' files are written and placed the same way for every format


@pytest.mark.parametrize("options, match", [
    ({"calibration": "nowhere"}, r"calibration folder nowhere does not exist"),
    ({"calibration": ".", "variant": "fp16"}, r"precision='int8' replaces variant='fp16'"),
    ({"calibration": ".", "max_drop": -1}, r"max_drop"),
    ({"calibration": ".", "min_agreement": 98}, r"min_agreement"),
])
def test_int8_options_are_checked_before_work(options, match, tmp_path):
    with pytest.raises(tz.InvalidArgumentError, match=match):
        tz.export(TWIST, tmp_path / "m.pte", precision="int8", **options)
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_precision_names_the_accepted_ones(tmp_path):
    with pytest.raises(tz.InvalidArgumentError, match=r"unknown precision 'int4'; did you mean 'int8'\?"):
        tz.export(TWIST, tmp_path / "m.pte", precision="int4")


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".onnx", ".xml"])
def test_onnx_and_openvino_int8_run_on_their_engines(digits, tmp_path, suffix):
    model = small_model()
    report = tz.export(model, tmp_path / f"m{suffix}", precision="int8", calibration=digits, max_drop=100.0)
    data = int8_data(digits, CLASSES, RES)
    quantized = file_logits(report.path, report.format, data.held_out, 1)
    with torch.inference_mode():
        reference = model(data.held_out).numpy()
    assert report.int8["agreement"] == pytest.approx(100.0 * float((quantized.argmax(1) == reference.argmax(1)).mean()))
    assert sorted(p.name for p in tmp_path.iterdir()) == (["m.bin", "m.xml"] if suffix == ".xml" else ["m.onnx"])
    assert tuple(report.int8["float_layers"]) == () and len(report.int8["tries"]) == 1


@pytest.mark.slow
def test_cli_export_int8_prints_the_measured_numbers(digits, tmp_path, capsys):
    from tinynet_zoo.cli import main

    out = tmp_path / "m.pte"
    argv = ["export", "10M", "--pretrained", "False", "--resolution", str(RES), "--out", str(out), "--int8",
            "--calibration", str(digits), "--min-agreement", "0"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"wrote {out} (pte int8, input 1x3x{RES}x{RES}") and "on 32 held-out images" in text
    assert main(argv + ["--min-agreement", "1.01"]) == 2
    assert "min_agreement must be" in capsys.readouterr().err


def relu6_net():
    """conv + ReLU6 layers whose pre-activations span about +-50: a ReLU6 output quantized with the conv's
    pre-clamp scale would get about 15 int8 levels in [0, 6]."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU6(inplace=True),
                              torch.nn.Conv2d(16, 16, 1), torch.nn.ReLU6(inplace=True),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 10)).eval()
    with torch.no_grad():
        net[0].weight.mul_(20.0)
        net[2].weight.mul_(10.0)
    return net


@pytest.mark.slow
def test_pte_int8_quantizes_relu6_outputs_after_the_clamp():
    from tinynet_zoo.deploy.engines.executorch import PteForward

    net, images = relu6_net(), torch.randn(48, 3, RES, RES, generator=torch.Generator().manual_seed(1))
    program = PteForward(quantize.pte_int8(net, images[:32], 16, ()))
    with torch.inference_mode():
        reference = net(images[32:]).numpy()
    error = float(np.abs(program(images[32:].numpy()) - reference).max())
    assert error < 0.03 * float(np.abs(reference).max())  # old: 9% (the clamp shared the conv's pre-clamp scale)


def test_a_quantizer_failure_names_the_quantizer_and_leaves_no_file(digits, tmp_path, monkeypatch):
    pytest.importorskip("executorch", reason="the .pte quantizer needs the [mobile] extra")

    def fails(*args):
        raise RuntimeError("Unsupported: data-dependent control flow\n  (a long trace follows)")

    monkeypatch.setattr(quantize, "pte_int8", fails)
    with pytest.raises(tz.QuantizationError, match=r"^torch.export \+ XNNPACK's PT2E quantizer could not quantize this "
                                                   r"model to int8 \(RuntimeError: Unsupported: data-dependent control "
                                                   r"flow\); nothing was written\. Export it in fp32"):
        tz.export(small_model(), tmp_path / "m.pte", precision="int8", calibration=digits)
    assert list(tmp_path.iterdir()) == []
