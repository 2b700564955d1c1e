"""One resolver: every API that takes a model accepts every kind of model spec, and means the same model."""
import json
import warnings

import pytest
import torch

import tinynet_zoo as tz
from conftest import saved_folder_and_hub
from tinynet_zoo.cli import main
from sample_data import export_digits

SMALL = tz.Twist(0.3, 0.4, 0.35, 48)
KINDS = ["name", "alias", "tag", "budget", "twist", "module", "folder", "hub"]
EXPECTED = {"name": ("tinynet_e", 106), "alias": ("efficientnet_b-4", 84), "tag": ("tinynet_e", 106),
            "budget": ("twist", tz.for_flops("10M").resolution), "twist": ("twist", 48), "module": ("twist", 48),
            "folder": ("twist", 48), "hub": ("twist", 48)}


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    root = tmp_path_factory.mktemp("specs")
    saved_folder_and_hub(root, SMALL)
    return {"name": "tinynet_e", "alias": "efficientnet_bm4", "tag": "tinynet_e.in1k", "budget": "10M",
            "twist": SMALL, "module": tz.create(SMALL), "folder": root / "folder", "hub": "hf-hub:me/small",
            "root": root}


@pytest.fixture
def spec(request, specs, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(specs["root"] / "hub"))
    return specs[request.param]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return export_digits(tmp_path_factory.mktemp("digits"), size=32, limit=60)


def _check_model(model, kind):
    label, resolution = EXPECTED[kind]
    assert isinstance(model, torch.nn.Module)
    assert model.pretrained_cfg["architecture"] == label
    assert model.pretrained_cfg["input_size"][-1] == resolution


@pytest.mark.parametrize("spec", KINDS, indirect=True)
def test_create_info_and_preprocessing(spec, request):
    kind = request.node.callspec.id
    _check_model(tz.create(spec), kind)
    info = tz.model_info(spec)
    assert info.resolution == EXPECTED[kind][1] and info.macs == info.twist.macs > 0
    assert tz.data_config(spec)["input_size"] == (3, EXPECTED[kind][1], EXPECTED[kind][1])
    image = __import__("PIL.Image").Image.new("RGB", (70, 90))
    assert tuple(tz.transforms(spec)(image).shape) == (3, EXPECTED[kind][1], EXPECTED[kind][1])


@pytest.mark.slow
@pytest.mark.parametrize("spec", KINDS, indirect=True)
def test_export_runtime_and_bench(spec, request, tmp_path):
    resolution = EXPECTED[request.node.callspec.id][1]
    report = tz.export(spec, tmp_path / "m.onnx")
    assert report.input_shape == (1, 3, resolution, resolution) and report.max_abs_diff <= 1e-4
    predict = tz.runtime(spec, backend="torch")
    assert predict(torch.zeros(1, 3, resolution, resolution)).ndim == 2
    rows = tz.bench([spec], backends=["eager", "torch"], runs=2, warmup=1, batch_runs=0, progress=False)
    assert [r["backend"] for r in rows] == ["eager", "torch"] and rows[0]["resolution"] == resolution


@pytest.mark.parametrize("spec", KINDS, indirect=True)
def test_finetune(spec, request, digits):
    kind = request.node.callspec.id
    pretrained = None if kind in ("module", "folder", "hub") else False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = tz.finetune(spec, digits, pretrained=pretrained, resolution=32, epochs=1, batch_size=16,
                             progress=False, ema_decay=None)
    assert len(result.history) == 1 and 0 <= result.best_top1 <= 100


@pytest.mark.parametrize("spec", ["name", "alias", "tag", "budget", "folder", "hub"], indirect=True)
def test_cli_info_takes_every_spelled_spec(spec, request, capsys):
    assert main(["info", str(spec), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["twist"]["resolution"] == EXPECTED[request.node.callspec.id][1]


def test_resolve_kinds_without_building(specs):
    kinds = {kind: tz.resolve(specs[kind]).kind for kind in ("name", "alias", "tag", "budget", "twist", "folder")}
    assert kinds == {"name": "entry", "alias": "entry", "tag": "entry", "budget": "budget", "twist": "twist",
                     "folder": "folder"}
    assert tz.resolve("tinynet_e.in1k").tag == "tinynet_e.in1k" and tz.resolve("TinyNet_E").label == "tinynet_e"
    assert tz.resolve(5e7).twist == tz.for_flops(5e7) == tz.resolve("50M").twist
    assert tz.resolve(f"local-dir:{specs['folder']}").kind == "folder"
    assert tz.resolve("hf-hub:me/small@abc").location == "hf-hub:me/small@abc"


def test_bad_specs_are_refused_clearly(tmp_path):
    with pytest.raises(tz.UnknownModelError, match="did you mean 'tinynet_e'"):
        tz.resolve("tinynet_ee")
    with pytest.raises(tz.UnknownTagError, match="did you mean 'tinynet_e.in1k'"):
        tz.resolve("tinynet_e.in1kk")
    with pytest.raises(tz.InvalidArgumentError, match="is not a model folder"):
        tz.resolve(tmp_path)
    with pytest.raises(tz.InvalidArgumentError, match="does not exist"):
        tz.resolve(tmp_path / "nowhere")
    with pytest.raises(tz.InvalidArgumentError, match="a model name"):
        tz.resolve(None)
    with pytest.raises(tz.InvalidArgumentError, match="user/repo"):
        tz.resolve("hf-hub:nope")
    with pytest.raises(tz.InvalidArgumentError, match="a built module is used as it is; num_classes"):
        tz.create(tz.create(SMALL), num_classes=3)
