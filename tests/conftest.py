"""Shared fixtures: the registry swept as parameters, tests kept off the network, optional extras (deploy, mobile,
search) skipped with the reason when they are not installed."""
import importlib.util
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # sample_data: the digits ImageFolder
# the packages of each optional extra that `pip install -e ".[dev]"` leaves out
EXTRAS = {"deploy": ("onnxruntime", "openvino", "onnx", "onnxscript"), "mobile": ("executorch",), "search": ("ray",)}
# TINYNET_ZOO_TEST_HIDE=onnxruntime,ray runs the tests as if those packages were not installed (checks the skip path)
for _name in filter(None, os.environ.get("TINYNET_ZOO_TEST_HIDE", "").split(",")):
    sys.modules[_name.strip()] = None
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    # one math thread per xdist worker: N workers x N threads on N cores makes OpenMP spin and crawl
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import tinynet_zoo as tz  # noqa: E402

ALL_MODELS = tz.list_models()
TIMM_NAMES = ["tinynet_a", "tinynet_b", "tinynet_c", "tinynet_d", "tinynet_e", "efficientnet_b0", "efficientnet_lite0"]


def measured_macs(model, resolution, in_chans=3):
    """MACs from torch's flop counter (FLOPs / 2) for one image."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    model.eval()
    with counter, torch.no_grad():
        model(torch.zeros(1, in_chans, resolution, resolution))
    return counter.get_total_flops() // 2


def missing_extra(extra):
    """Why the tests of an optional extra cannot run here (its packages that are not installed), or None."""
    gone = [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]
    return (f"needs the {extra} extra ({', '.join(gone)} not installed): pip install -e \".[{extra}]\""
            if gone else None)


def require_extra(extra):
    """At the top of a test module: skip the whole module, with the reason, unless `extra` is installed."""
    reason = missing_extra(extra)
    if reason:
        pytest.skip(reason, allow_module_level=True)


def needs_extra(extra):
    """A mark that skips one test, with the reason, unless `extra` is installed."""
    reason = missing_extra(extra)
    return pytest.mark.skipif(reason is not None, reason=reason or "")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test that stops on the library's own 'extra not installed' error, for a package that really is not
    installed, is skipped with that message instead of failing (tests that expect the error catch it)."""
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is None or not report.failed:
        return
    from tinynet_zoo.errors import ExtraNotInstalledError

    exc = call.excinfo.value
    if isinstance(exc, ExtraNotInstalledError) and any(
            importlib.util.find_spec(name) is None for names in EXTRAS.values() for name in names if name in str(exc)):
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {exc}")


@pytest.fixture(params=ALL_MODELS)
def model_name(request):
    return request.param


def hub_cache_entry(cache, repo, folder, revision="0123456789abcdef0123456789abcdef01234567"):
    """Lay a saved model folder out as a Hugging Face hub cache entry (what a download leaves behind)."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snap = root / "snapshots" / revision
    snap.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (snap / name).write_bytes((folder / name).read_bytes())
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(revision)


def saved_folder_and_hub(root, twist, num_classes=3):
    """A saved model folder of `twist` at root/folder, and the same folder as the hub repo 'me/small' in the
    Hugging Face cache at root/hub."""
    import torch

    torch.manual_seed(0)
    tz.save_pretrained(tz.create(twist, num_classes=num_classes), root / "folder")
    hub_cache_entry(root / "hub", "me/small", root / "folder")
