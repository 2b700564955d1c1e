"""Bad input to the deploy path, as a standing table: (call, error type, message pattern).

Every refusal is the package's own error naming what was wrong and what is accepted; never a raw onnxruntime,
OpenVINO, protobuf or ExecuTorch error, never an IndexError from inside the package, never a silently replaced
file or a wrong answer computed from unnormalised integers.
"""
import sys

import numpy as np
import pytest
import torch

import tinynet_zoo as tz
from tinynet_zoo.system import usable_cores

from deploy_helpers import RES, small_model
from conftest import require_extra

require_extra("deploy")

MOST_THREADS = usable_cores() * 4


class Files:
    """A folder of bad (and one good) model files, and a small built model."""

    def __init__(self, root):
        self.root, self.model = root, small_model()
        (root / "empty.onnx").write_bytes(b"")
        (root / "empty.pte").write_bytes(b"")
        (root / "garbage.onnx").write_bytes(bytes(range(256)) * 8)
        (root / "text.onnx").write_text("this is not a model\n")
        (root / "garbage.pte").write_bytes(b"PTE?" * 100)
        (root / "text.xml").write_text("hello")
        (root / "model.tflite").write_bytes(b"TFL3")
        (root / "taken.onnx").write_text("someone's file")
        (root / "taken.bin").write_text("someone's weights")
        self.torch = tz.runtime(self.model, backend="torch")

    def __getattr__(self, name):
        return self.root / name.replace("_", ".", 1)


def _refused(array):
    return lambda f: f.torch(array)


CASES = [
    # export: formats, extensions and existing files
    ("unknown format", lambda f: tz.export(f.model, f.root / "m.onnx", format="onx"), tz.UnknownNameError,
     r"unknown export format 'onx'; did you mean 'onnx'"),
    ("unknown extension", lambda f: tz.export(f.model, f.root / "m.tflite"), tz.InvalidArgumentError,
     r"cannot tell the export format from 'm\.tflite': end it in \.onnx \(onnx\), \.xml \(openvino\), \.pte"),
    ("format against extension", lambda f: tz.export(f.model, f.root / "m.onnx", format="pte"),
     tz.InvalidArgumentError, r"format 'pte' writes \.pte files, got 'm\.onnx'"),
    ("IR without .xml", lambda f: tz.export(f.model, f.root / "m.bin", format="openvino"), tz.InvalidArgumentError,
     r"format 'openvino' writes \.xml files.*its weights go beside it in \.bin"),
    ("existing file", lambda f: tz.export(f.model, f.taken_onnx), tz.InvalidArgumentError,
     r"taken\.onnx already exists; pass overwrite=True \(CLI: --overwrite\)"),
    ("existing IR weights", lambda f: tz.export(f.model, f.root / "taken.xml"), tz.InvalidArgumentError,
     r"taken\.bin already exists"),
    ("overwrite not a bool", lambda f: tz.export(f.model, f.taken_onnx, overwrite="yes"), tz.InvalidArgumentError,
     r"overwrite must be True or False, got 'yes'"),
    ("dynamic batch pte", lambda f: tz.export(f.model, f.root / "m.pte", batch=None), tz.InvalidArgumentError,
     r"an ExecuTorch program has a fixed batch size here: pass batch=N"),
    ("int8 is not offered", lambda f: tz.export(f.model, f.root / "m.pte", variant="int8"), tz.InvalidArgumentError,
     r"variant 'int8' is not offered: int8 files are calibrated .*precision='int8' and calibration=DIR.*"
     r"accepted: fp32, fp16"),
    ("unknown variant", lambda f: tz.export(f.model, f.root / "m.pte", variant="fp8"), tz.UnknownNameError,
     r"unknown pte variant 'fp8'"),
    ("variant of an ONNX file", lambda f: tz.export(f.model, f.root / "m.onnx", variant="fp16"),
     tz.InvalidArgumentError, r"variant 'fp16' applies to pte \(\.pte\) files; onnx is fp32"),
    ("opset of a pte", lambda f: tz.export(f.model, f.root / "m.pte", opset=18), tz.InvalidArgumentError,
     r"opset applies to ONNX files only"),
    ("batch 0", lambda f: tz.export(f.model, f.root / "m.onnx", batch=0), tz.InvalidArgumentError,
     r"batch \(None for a dynamic batch axis\) must be an integer >= 1, got 0"),
    ("negative tolerance", lambda f: tz.export(f.model, f.root / "m.onnx", tolerance=-1), tz.InvalidArgumentError,
     r"tolerance must be a finite number > 0"),
    # reading model files: the package's own error with the path and the format expected
    ("empty onnx, auto", lambda f: tz.runtime(f.empty_onnx), tz.UnreadableModelError,
     r"empty\.onnx is empty \(0 bytes\); expected an ONNX model"),
    ("empty onnx, onnxruntime", lambda f: tz.runtime(f.empty_onnx, backend="onnxruntime"), tz.UnreadableModelError,
     r"empty\.onnx is empty \(0 bytes\)"),
    ("empty pte", lambda f: tz.runtime(f.empty_pte), tz.UnreadableModelError, r"empty\.pte is empty \(0 bytes\); "
     r"expected an ExecuTorch program"),
    ("garbage onnx, auto", lambda f: tz.runtime(f.garbage_onnx), tz.UnreadableModelError,
     r"cannot read .*garbage\.onnx as an ONNX model \(tz\.export or torch\.onnx\.export\): "),
    ("garbage onnx, onnxruntime", lambda f: tz.runtime(f.garbage_onnx, backend="onnxruntime"),
     tz.UnreadableModelError, r"cannot read .*garbage\.onnx as an ONNX model"),
    ("text onnx, openvino", lambda f: tz.runtime(f.text_onnx, backend="openvino"), tz.UnreadableModelError,
     r"cannot read .*text\.onnx as an ONNX model"),
    ("text xml", lambda f: tz.runtime(f.text_xml, backend="openvino"), tz.UnreadableModelError,
     r"cannot read .*text\.xml as OpenVINO IR \(the \.xml with its \.bin beside it\)"),
    ("garbage pte", lambda f: tz.runtime(f.garbage_pte, backend="executorch"), tz.UnreadableModelError,
     r"cannot read .*garbage\.pte as an ExecuTorch program"),
    ("missing file", lambda f: tz.runtime(f.root / "missing.onnx"), tz.InvalidArgumentError,
     r"no exported model at .*missing\.onnx \(expected an ONNX model"),
    ("unsupported file", lambda f: tz.runtime(f.model_tflite), tz.InvalidArgumentError,
     r"model\.tflite: not a model file this package runs; accepted: \.onnx .*\.xml .*\.pte"),
    # backends
    ("unknown backend", lambda f: tz.runtime(f.model, backend="openvno"), tz.UnknownNameError,
     r"unknown backend 'openvno'; did you mean 'openvino'"),
    ("backend for another file type", lambda f: tz.runtime(f.garbage_pte, backend="onnxruntime"),
     tz.InvalidArgumentError, r"backend 'onnxruntime' does not read \.pte files; for garbage\.pte use 'executorch'"),
    ("torch on a file", lambda f: tz.runtime(f.garbage_onnx, backend="torch"), tz.InvalidArgumentError,
     r"backend 'torch' runs a model or a model name, not an exported file"),
    ("unknown auto candidate", lambda f: tz.runtime(f.model, candidates=["onnxruntme"]), tz.UnknownNameError,
     r"unknown auto candidate 'onnxruntme'; did you mean 'onnxruntime'"),
    ("threads for executorch", lambda f: tz.runtime(f.model, backend="executorch", threads=1),
     tz.InvalidArgumentError, r"backend 'executorch' uses its process-wide thread setting; leave threads=None"),
    *[(f"threads={bad!r}", lambda f, bad=bad: tz.runtime(f.model, backend="torch", threads=bad),
       tz.InvalidArgumentError, rf"threads must be an integer in \[1, {MOST_THREADS}\], got {bad!r}")
      for bad in (0, -1, MOST_THREADS + 1, 1000, 1.5, True, "2")],
    ("batch=0", lambda f: tz.runtime(f.model, backend="torch", batch=0), tz.InvalidArgumentError,
     r"batch must be an integer >= 1, got 0"),
    # input: dtype, shape, channel count
    *[(f"numpy {dtype}", _refused(np.zeros((1, 3, RES, RES), dtype)), tz.InvalidArgumentError,
       rf"input dtype {np.dtype(dtype).name} is not accepted: expected float32 \(float16, float32, float64 are "
       rf"converted\) holding pixels normalised")
      for dtype in (np.uint8, np.int64, np.bool_, np.complex64, object)],
    *[(f"torch {dtype}", _refused(torch.zeros(1, 3, RES, RES, dtype=dtype)), tz.InvalidArgumentError,
       rf"input dtype {dtype} is not accepted: expected float32 \(torch float dtypes are converted\)")
      for dtype in (torch.uint8, torch.int64, torch.bool, torch.complex64)],
    ("4 channels", _refused(np.zeros((1, 4, RES, RES), np.float32)), tz.InvalidArgumentError,
     r"input of shape \(1, 4, 64, 64\) does not match the expected shape \(N, 3, 64, 64\) \(float32, NCHW\); it has "
     r"4 channels where 3 \(RGB\) are expected"),
    ("channels last", _refused(np.zeros((1, RES, RES, 3), np.float32)), tz.InvalidArgumentError,
     r"input of shape \(1, 64, 64, 3\) does not match the expected shape \(N, 3, 64, 64\)"),
    ("no batch axis", _refused(np.zeros((3, RES, RES), np.float32)), tz.InvalidArgumentError,
     r"input of shape \(3, 64, 64\) does not match"),
    ("wrong resolution", _refused(np.zeros((2, 3, 32, 32), np.float32)), tz.InvalidArgumentError,
     r"\(2, 3, 32, 32\) does not match the expected shape \(N, 3, 64, 64\)"),
    ("a list", _refused([[0.0]]), tz.InvalidArgumentError, r"expected a numpy array or torch tensor of shape "
     r"\(N, 3, 64, 64\), got list"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return Files(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("call, error, message", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_refused_clearly(files, call, error, message, monkeypatch):
    from tinynet_zoo.deploy import export as export_module

    def too_late(*args, **kwargs):
        raise AssertionError("export built the model before refusing its arguments")

    monkeypatch.setattr(export_module, "prepare", too_late)  # every export case here is refused up front
    before = sorted(p.name for p in files.root.iterdir())
    with pytest.raises(error, match=message):
        call(files)
    assert sorted(p.name for p in files.root.iterdir()) == before  # nothing written, nothing replaced


def test_half_and_double_precision_input_is_converted(files):
    x = np.random.default_rng(0).standard_normal((2, 3, RES, RES)).astype(np.float32)
    expected = files.torch(x)
    assert expected.std() > 0.1  # logits large enough for the comparisons to mean something
    assert np.abs(files.torch(x.astype(np.float64)) - expected).max() < 1e-5
    assert np.abs(files.torch(x.astype(np.float16)) - expected).max() < 0.05 * np.abs(expected).max()
    assert np.abs(files.torch(torch.from_numpy(x).bfloat16()).numpy() - expected).max() < 0.1 * np.abs(expected).max()


@pytest.mark.parametrize("backend, extra, call", [
    ("openvino", "deploy", lambda f: tz.runtime(f.text_xml, backend="openvino")),
    ("executorch", "mobile", lambda f: tz.runtime(f.garbage_pte, backend="executorch")),
    ("executorch", "mobile", lambda f: tz.export(f.model, f.root / "m.pte")),
    ("onnxruntime", "deploy", lambda f: tz.runtime(f.model, backend="onnxruntime")),
])
def test_an_engine_not_installed_names_its_extra(files, backend, extra, call, monkeypatch):
    monkeypatch.setitem(sys.modules, backend, None)  # find_spec() then reports it as not installed
    message = rf"'{backend}' package.*pip install 'tinynet-zoo\[{extra}\]'"
    with pytest.raises(tz.BackendNotInstalledError, match=message):
        call(files)
