"""Quantization-aware fine-tuning (`finetune(qat=True)`, `finetune --qat`): fake quantization is active while
training, the learned tensors land in ordinary model folders, and what qat cannot do is refused before work."""
import json
import shutil
import types

import pytest
import torch
from safetensors.torch import load_file

import tinynet_zoo as tz
from conftest import needs_extra
from sample_data import export_digits
from tinynet_zoo.cli import main
from tinynet_zoo.errors import ExtraNotInstalledError, IncompatibleCheckpointError, InvalidArgumentError
from tinynet_zoo.training import qat

RES = 32
TWIST = tz.Twist(0.3, 0.4, 0.35, RES)
QUICK = dict(epochs=1, batch_size=16, progress=False)
mobile = needs_extra("mobile")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return export_digits(tmp_path_factory.mktemp("qat_digits"), size=RES, limit=60)


@pytest.fixture(scope="module")
def qat_run(digits, tmp_path_factory):
    """One quantization-aware epoch of a small twist, trained in place (a module spec), with the traced graph the
    loop trained through kept for inspection."""
    if qat.missing():
        pytest.skip(f"needs the mobile extra ({qat.missing()} not installed)")
    torch.manual_seed(0)
    model = tz.create(TWIST, num_classes=10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    graphs = []

    def keep(*args, **kwargs):
        graphs.append(prepare(*args, **kwargs))
        return graphs[-1]

    prepare, out = qat.prepare, tmp_path_factory.mktemp("qat") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(qat, "prepare", keep)
        result = tz.finetune(model, digits, out, qat=True, batchnorm="train", lr=3e-3, **QUICK)
    return types.SimpleNamespace(model=model, before=before, graph=graphs[0], out=out, result=result)


@pytest.mark.slow  # shares one qat run: tracing and preparing alone take 15-20 s
@mobile
def test_training_runs_through_fake_quantization(qat_run):
    graph, model = qat_run.graph, qat_run.model
    assert qat.is_fake_quantized(graph)
    names = {m.__class__.__name__ for m in graph.modules()}
    assert "FusedMovingAvgObsFakeQuantize" in names
    observed = [m for m in graph.modules() if m.__class__.__name__ == "FusedMovingAvgObsFakeQuantize"]
    assert all(float(m.scale.max()) != 1.0 for m in observed[:5])  # ranges were observed while training
    # the graph computes with the model's own tensors (the optimiser stepped them through it)
    params = {id(p) for p in model.parameters()}
    assert {id(p) for p in graph.parameters()} == params
    images = torch.rand(4, 3, RES, RES)
    model.eval()
    graph.eval()
    with torch.no_grad():
        fake, real = graph(images), model(images)
    diff = float((fake - real).abs().max())
    assert 1e-4 < diff < 0.5 * float(real.abs().max())  # int8 rounding: close to float, not equal


@pytest.mark.slow  # shares one qat run: tracing and preparing alone take 15-20 s
@mobile
def test_learned_weights_land_in_the_saved_folder(qat_run):
    run = qat_run
    assert run.result.best_epoch == 1 and run.result.best_source == "model"
    saved = load_file(str(run.out / "best" / "model.safetensors"))
    trained = run.model.state_dict()
    assert set(saved) == set(trained)
    for key, tensor in trained.items():  # the traced graph also counts evaluation batches: a counter only
        assert key.endswith("num_batches_tracked") or torch.equal(saved[key], tensor), key
    moved = [k for k in trained if not torch.equal(trained[k], run.before[k])]
    assert "conv_stem.weight" in moved and "bn1.running_mean" in moved  # parameters and batch-norm statistics
    config = json.loads((run.out / "best" / "config.json").read_text())
    assert config["qat"] == qat.SCHEME  # extra keys sit at the top level of config.json
    loaded = tz.create(run.out / "best").eval()
    images = torch.rand(2, 3, RES, RES)
    run.model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(images), run.model(images))


@pytest.mark.slow  # shares one qat run: tracing and preparing alone take 15-20 s
@mobile
def test_resuming_a_qat_run_without_qat_is_refused(qat_run, digits):
    with pytest.raises(IncompatibleCheckpointError, match="trained with qat and this run asks without it"):
        tz.finetune(TWIST, digits, qat_run.out, pretrained=False, resume=qat_run.out, **QUICK)


@pytest.mark.slow  # trains a float run first
@mobile
def test_resuming_a_float_run_with_qat_is_refused(digits, tmp_path):
    tz.finetune(TWIST, digits, tmp_path / "float", pretrained=False, **QUICK)
    with pytest.raises(IncompatibleCheckpointError, match="trained without qat and this run asks with it"):
        tz.finetune(TWIST, digits, tmp_path / "float", pretrained=False, resume=tmp_path / "float", qat=True, **QUICK)


@pytest.mark.slow  # a second qat run (tracing and preparing again)
@mobile
def test_a_qat_run_resumes_with_qat(qat_run, digits, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(qat_run.out, out)
    model = tz.create(TWIST, num_classes=10)  # the same kind of spec as the run's (a module: its rates)
    result = tz.finetune(model, digits, out, resume=out, qat=True, batchnorm="train", lr=3e-3,
                         **{**QUICK, "epochs": 2})
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert result.history[0] == qat_run.result.history[0]  # the first epoch is the resumed run's
    assert (out / "checkpoints" / "epoch-0002").is_dir()
    assert json.loads((out / "best" / "config.json").read_text())["qat"] == qat.SCHEME


@pytest.mark.parametrize("option, needles", [
    (dict(amp="bf16"), ["amp='bf16'", "'auto' or 'off'"]),
    (dict(channels_last="on"), ["channels_last='on'", "--channels-last on"]),
    (dict(ema_decay=0.999), ["ema_decay=0.999", "no EMA"]),
    (dict(drop_path_rate=0.1), ["drop_path_rate=0.1", "stochastic depth"]),
])
def test_settings_qat_cannot_honour_are_refused(digits, tmp_path, option, needles):
    with pytest.raises(InvalidArgumentError) as caught:
        tz.finetune(TWIST, digits, tmp_path / "run", pretrained=False, qat=True, **{**QUICK, **option})
    assert all(needle in str(caught.value) for needle in needles), str(caught.value)
    assert not (tmp_path / "run").exists()  # refused before any work


def test_qat_without_the_mobile_extra_names_it(digits, tmp_path, monkeypatch):
    monkeypatch.setattr(qat, "is_installed", lambda name: name != "executorch")
    with pytest.raises(ExtraNotInstalledError, match=r"needs executorch, which is not installed: pip install "
                                                     r"'tinynet-zoo\[mobile\]'"):
        tz.finetune(TWIST, digits, tmp_path / "run", pretrained=False, qat=True, **QUICK)


def test_qat_under_torchrun_is_refused(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(InvalidArgumentError, match=r"one process, not under torchrun \(2 processes\)"):
        tz.finetune(TWIST, digits, tmp_path / "run", pretrained=False, qat=True, **QUICK)


def test_qat_of_a_features_only_backbone_is_refused():
    backbone = tz.create(TWIST, features_only=True)
    with pytest.raises(InvalidArgumentError, match="qat=True needs a classifier; .*features_only=True"):
        qat.prepare(backbone, torch.zeros(1, 3, RES, RES))


@mobile
def test_a_model_the_quantizer_cannot_trace_gets_one_line():
    model = tz.create(TWIST, num_classes=10)
    model.forward = types.MethodType(lambda self, x: self.forward_head(self.forward_features(x)) if x.sum() > 0
                                     else x, model)
    with pytest.raises(InvalidArgumentError) as caught:
        qat.prepare(model, torch.zeros(1, 3, RES, RES))
    message = str(caught.value)
    assert message.startswith("this model cannot be prepared for quantization-aware training (")
    assert "fine-tune it without qat" in message and "\n" not in message


def test_cli_qat_refusal_is_one_line(digits, tmp_path, capsys):
    code = main(["finetune", "10M", "--data", str(digits), "--out", str(tmp_path / "r"), "--qat", "--amp", "fp16",
                 "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("tinynet-zoo: error: --qat trains in float32") and "--amp fp16 does not apply" in err


@pytest.mark.slow
@mobile
def test_qat_folder_exports_an_int8_pte_that_passes_the_gate(qat_run, digits, tmp_path, capsys):
    """finetune --qat, then export --int8: the .pte is written and its report shows the gate passed (one barely
    trained epoch on 60 images: the drop allowed is wide, the pipeline is what is checked)."""
    out = tmp_path / "m.pte"
    code = main(["export", str(qat_run.out / "best"), "--out", str(out), "--int8", "--calibration", str(digits),
                 "--max-drop", "100", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and out.is_file()
    assert report["int8"]["passed"] and report["int8"]["labelled"] and report["int8"]["float_layers"] == []


def test_the_int8_refusal_suggests_quantization_aware_fine_tuning():
    from tinynet_zoo.deploy.int8_gate import GateResult, refuse

    error = refuse([GateResult(200, True, 90.5, 80.0, 85.0, False)], 1.0, 0.98)
    assert str(error).startswith("int8 lost too much accuracy, nothing was written: top-1 90.5% float vs 80.0% int8")
    assert "tinynet-zoo finetune MODEL --qat" in str(error) and "tz.finetune(..., qat=True)" in str(error)
