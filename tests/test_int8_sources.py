"""Where int8 calibration comes from and what each engine needs: scikit-image's sample photos when no images are
given (with a warning, or a clear error without scikit-image), and NNCF for OpenVINO IR (quiet, its ignored scope
taken from the layers kept float)."""
import logging
import warnings

import numpy as np
import pytest
import torch

import tinynet_zoo as tz
from tinynet_zoo.deploy import quantize
from tinynet_zoo.deploy import sample_photos as photos
from tinynet_zoo.deploy.engines import openvino as openvino_engine
from tinynet_zoo.deploy.int8_gate import logits
from tinynet_zoo.images import list_images
from tinynet_zoo.system import is_installed

RES = 32
TWIST = tz.Twist(0.3, 0.4, 0.35, RES)


@pytest.fixture(scope="module")
def photo_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        photos.sample_photos(cache)  # written once for the module
    return cache


def small_model():
    torch.manual_seed(0)
    model = tz.create(TWIST, num_classes=10).eval()
    with torch.no_grad():
        model.classifier.weight.normal_(0, 0.5)
    return model


def test_sample_photos_are_crops_of_different_photos_for_calibration_and_held_out(photo_cache):
    with pytest.warns(UserWarning, match=r"generic sample photos.*pass calibration=DIR \(CLI: --calibration DIR\)"):
        folder = photos.sample_photos(photo_cache)
    train, val = list_images(folder / "train"), list_images(folder / "val")
    assert (len(train), len(val)) == (198, 126)  # 3 square photos give 19 crops, the others 21; each mirrored too
    assert {p.name.rsplit("-", 1)[0] for p in train} == set(photos.CALIBRATION_PHOTOS)
    assert {p.name.rsplit("-", 1)[0] for p in val} == set(photos.HELD_OUT_PHOTOS)
    from PIL import Image

    with Image.open(val[0]) as image:
        assert (image.size, image.mode) == ((256, 256), "RGB")


def test_views_are_deterministic_and_mirrored():
    from PIL import Image

    photo = Image.fromarray(np.arange(60 * 90 * 3, dtype=np.uint8).reshape(60, 90, 3) % 251)
    first, again = photos.views(photo), photos.views(photo)
    assert len(first) == 42 and all(a.tobytes() == b.tobytes() for a, b in zip(first, again))
    assert first[1].tobytes() == first[0].transpose(Image.FLIP_LEFT_RIGHT).tobytes()


def fake_engines(monkeypatch, model):
    """int8 builds that write placeholder files and return the model's own logits (no engine runs)."""
    monkeypatch.setattr(quantize, "onnx_int8", lambda source, target, *args: target.write_bytes(b"qdq"))
    monkeypatch.setattr(quantize, "file_logits", lambda path, format, images, batch: logits(model, images).numpy())


def test_no_calibration_calibrates_on_the_sample_photos_and_warns(photo_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYNET_ZOO_CACHE", str(photo_cache))
    model, shapes = small_model(), {}
    fake_engines(monkeypatch, model)
    monkeypatch.setattr(quantize, "onnx_int8", lambda source, target, calibration, *args: [
        shapes.update(calibration=tuple(calibration.shape)), target.write_bytes(b"qdq")])
    with pytest.warns(UserWarning, match=r"scikit-image's generic sample photos, which may not look like your images"):
        report = quantize.write_int8(model, tmp_path / "m.onnx", "onnx", RES, None, None, 1.0, 0.98,
                                     lambda folded, path: path.write_bytes(b"float"), lambda pairs: None)
    gate = report["int8"]
    assert (gate["calibration_images"], gate["images"], gate["labelled"]) == (198, 126, False)  # old: refused
    assert shapes["calibration"] == (198, 3, RES, RES)  # the photos' crops at the model's resolution


def test_without_scikit_image_no_calibration_is_refused_with_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(photos, "is_installed", lambda package: package != "skimage")
    with pytest.raises(tz.ExtraNotInstalledError, match=r"scikit-image is not installed: pip install scikit-image "
                                                        r"\(or 'tinynet-zoo\[dev\]'\), or pass calibration=DIR"):
        tz.export(TWIST, tmp_path / "m.onnx", precision="int8")
    assert list(tmp_path.iterdir()) == []
    tz.deploy.quantize.check_int8("onnx", "fp32", tmp_path, 1.0, 0.98)  # a folder needs no scikit-image


@pytest.mark.slow
def test_cli_int8_without_calibration_uses_the_sample_photos(photo_cache, tmp_path, monkeypatch, capsys):
    from tinynet_zoo.cli import main

    monkeypatch.setenv("TINYNET_ZOO_CACHE", str(photo_cache))
    monkeypatch.setattr(quantize, "onnx_int8", lambda source, target, *args: target.write_bytes(b"qdq"))
    monkeypatch.setattr(quantize, "file_logits", lambda path, format, images, batch: np.eye(1000)[[0] * len(images)])
    out = tmp_path / "m.onnx"
    argv = ["export", "10M", "--pretrained", "False", "--resolution", str(RES), "--out", str(out), "--int8",
            "--min-agreement", "0"]
    with pytest.warns(UserWarning, match="generic sample photos"):
        assert main(argv) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"wrote {out} (onnx int8") and "on 126 held-out images" in text
    assert "generic sample photos, not on your images" in text and "pass --calibration DIR" in text
    monkeypatch.setattr(photos, "is_installed", lambda package: package != "skimage")
    assert main(argv + ["--overwrite"]) == 2
    assert "pip install scikit-image" in capsys.readouterr().err


def test_openvino_int8_needs_nncf(tmp_path, monkeypatch):
    monkeypatch.setattr(openvino_engine, "is_installed", lambda package: package != "nncf")
    with pytest.raises(tz.BackendNotInstalledError, match=r"int8 OpenVINO IR needs the 'nncf' package .*which is not "
                                                          r"installed: pip install 'tinynet-zoo\[deploy\]'"):
        tz.export(TWIST, tmp_path / "m.xml", precision="int8", calibration=tmp_path)
    quantize.check_int8("onnx", "fp32", tmp_path, 1.0, 0.98)  # ONNX does not need it


def test_the_kept_float_modules_name_their_openvino_operations():
    pytest.importorskip("openvino")

    class Op:
        def __init__(self, name):
            self.name = name

        def get_friendly_name(self):
            return self.name

    class Converted:
        def get_ops(self):
            return [Op(n) for n in ("__module.conv_stem/aten::_convolution/Convolution",
                                    "__module.conv_stem2/aten::_convolution/Convolution",
                                    "__module.blocks.1.0.se.conv_reduce/aten::_convolution/Convolution",
                                    "__module.blocks.1.0.se/aten::mul/Multiply",
                                    "__module.blocks.1.0.conv_pw/aten::_convolution/Convolution",
                                    "__module.classifier/aten::linear/Add", "self.classifier.weight")]

    assert openvino_engine.ignored_ops(Converted(), ("conv_stem", "blocks.1.0.se", "classifier")) == [
        "__module.conv_stem/aten::_convolution/Convolution",
        "__module.blocks.1.0.se.conv_reduce/aten::_convolution/Convolution",
        "__module.blocks.1.0.se/aten::mul/Multiply", "__module.classifier/aten::linear/Add"]


@pytest.mark.slow
@pytest.mark.skipif(not is_installed("nncf"), reason="needs nncf: pip install 'tinynet-zoo[deploy]'")
def test_nncf_quantizes_all_but_the_kept_float_layers_quietly(tmp_path, capfd, monkeypatch):
    ov = pytest.importorskip("openvino")
    monkeypatch.chdir(tmp_path)  # at DEBUG, NNCF would write ./nncf_debug graph dumps here
    model = small_model()
    converted = openvino_engine.openvino_model(model, RES, 1)
    calibration = torch.randn(8, 3, RES, RES)
    fed = {}
    for kept in ((), ("conv_stem",)):
        openvino_engine.openvino_int8(converted, tmp_path / "q.xml", calibration, kept)
        logging.getLogger("nncf").setLevel(logging.DEBUG)  # the user asks for NNCF's log: still not while quantizing
        quantized = ov.Core().read_model(str(tmp_path / "q.xml"))
        fed[kept] = {i.get_node().get_friendly_name() for op in quantized.get_ops()
                     if op.get_type_name() == "FakeQuantize" for i in op.output(0).get_target_inputs()}
    stem = "__module.conv_stem/aten::_convolution/Convolution"
    assert stem in fed[()] and stem not in fed[("conv_stem",)]
    assert fed[()] - {stem} == fed[("conv_stem",)]  # only the stem's quantizers left out
    assert capfd.readouterr() == ("", "")  # no progress bars, no log lines
    assert not (tmp_path / "nncf_debug").exists()  # no debug dumps in the working folder
    assert logging.getLogger("nncf").level == logging.DEBUG and logging.root.manager.disable == logging.NOTSET
    assert logging.getLoggerClass() is logging.Logger  # importing NNCF made every later logger an NNCFLogger
