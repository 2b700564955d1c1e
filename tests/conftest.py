"""Shared fixtures: the registry swept as parameters, tests kept off the network."""
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
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
