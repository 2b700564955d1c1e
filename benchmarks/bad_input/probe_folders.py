"""Bad-input cases for model folders (hand-edited config.json, missing or mismatched files, leftovers, concurrent
saves, `extra=` keys, info/create/CLI on broken folders) and run folders (finetune --overwrite / --resume on folders
holding the user's own files, malformed or foreign run.json).

Every case works on copies of one tiny model folder and one tiny finished run, built once per process.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

from probe import Kept, case, cli, judge_cli

LABELS = ["cat", "dog", "fox"]
_CACHE = Path(tempfile.mkdtemp(prefix="probe-folders-"))
MODEL = "10M"  # the model of every run case (a budget built by the tiny formula), trained at 32 pixels
RUN = dict(epochs=1, batch_size=8, progress=False, pretrained=False, seed=0, resolution=32)


def _tz():
    import tinynet_zoo as tz
    return tz


def _small():
    return _tz().Twist(r=0.3, d=0.4, w=0.35, resolution=32)


@lru_cache(maxsize=None)
def _template(kind: str = "small") -> Path:
    """A saved 3-class model folder (kind 'small'), or one of another twist with 5 classes ('other')."""
    import torch
    tz = _tz()
    torch.manual_seed(0)
    twist = _small() if kind == "small" else _small().replace(w=0.5)
    classes = 3 if kind == "small" else 5
    model = tz.create(twist, num_classes=classes)
    model.pretrained_cfg["label_names"] = LABELS if classes == 3 else list("abcde")
    return tz.save_pretrained(model, _CACHE / f"template-{kind}")


def _folder(tmp: Path, name: str = "m", kind: str = "small") -> Path:
    return Path(shutil.copytree(_template(kind), tmp / name))


def _edit(folder: Path, change) -> Path:
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))  # json writes NaN as the bare word NaN
    return folder


def _create(tmp: Path, change) -> None:
    _tz().create(_edit(_folder(tmp), change))


def _set(*path_and_value):
    """A config change setting config[k1][k2]... = value."""
    *keys, value = path_and_value

    def change(config):
        node = config
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return change


def _drop(*keys):
    def change(config):
        node = config
        for key in keys[:-1]:
            node = node[key]
        node.pop(keys[-1])
    return change


# ---- hand-edited config.json fields, loaded with create(Path) ----
EDITS = {
    "label-names-string": (_set("label_names", "abc"), ("label_names",)),
    "label-names-numbers": (_set("label_names", [1, 2, 3]), ("label_names",)),
    "label-names-duplicates": (_set("label_names", ["cat", "cat", "dog"]), ("label_names", "distinct")),
    "label-names-too-few": (_set("label_names", ["cat"]), ("1 class names", "3 classes")),
    "num-classes-string": (_set("num_classes", "3"), ("num_classes", "'3'")),
    "num-classes-negative": (_set("num_classes", -3), ("num_classes", "-3")),
    "num-classes-huge": (lambda c: (c.update(num_classes=10**12), c.pop("label_names")), ("10000000000",)),
    "num-classes-bool": (_set("num_classes", True), ("num_classes", "true")),
    "input-size-negative": (_set("pretrained_cfg", "input_size", [3, -32, -32]), ("-32", "[32, 1024]")),
    "input-size-huge": (_set("pretrained_cfg", "input_size", [3, 100000, 100000]), ("100000", "1024")),
    "input-size-not-square": (_set("pretrained_cfg", "input_size", [3, 32, 64]), ("input_size", "[3, 32, 64]")),
    "input-size-zero-channels": (_set("pretrained_cfg", "input_size", [0, 32, 32]), ("channels", "0")),
    "input-size-string": (_set("pretrained_cfg", "input_size", "32x32"), ("input_size", "32x32")),
    "mean-nan": (_set("pretrained_cfg", "mean", [float("nan"), 0.4, 0.4]), ("mean", "nan")),
    "mean-two-values": (_set("pretrained_cfg", "mean", [0.5, 0.5]), ("mean", "3")),
    "std-zero": (_set("pretrained_cfg", "std", [0.2, 0.0, 0.2]), ("std", "0.0")),
    "std-negative": (_set("pretrained_cfg", "std", [0.2, -0.2, 0.2]), ("std", "-0.2")),
    "std-infinite": (_set("pretrained_cfg", "std", [float("inf"), 0.2, 0.2]), ("std", "inf")),
    "crop-pct-zero": (_set("pretrained_cfg", "crop_pct", 0), ("crop_pct", "0")),
    "crop-pct-above-one": (_set("pretrained_cfg", "crop_pct", 8.75), ("crop_pct", "8.75")),
    "interpolation-typo": (_set("pretrained_cfg", "interpolation", "bicubc"), ("bicubc", "bicubic")),
    "twist-r-negative": (_set("twist", "r", -0.3), ("twist.r", "-0.3")),
    "twist-w-nan": (_set("twist", "w", float("nan")), ("twist.w", "nan")),
    "twist-unknown-base": (_set("twist", "base", "mobilenet_v9"), ("mobilenet_v9", "base")),
    "twist-unknown-rules": (_set("twist", "rules", "tinynett"), ("tinynett", "tinynet")),
    "twist-missing-resolution": (_drop("twist", "resolution"), ("twist", "resolution")),
    "format-string": (_set("format", "2"), ("format", "'2'")),
    "format-future": (_set("format", 3), ("format 3", "pip install -U")),
    "library-missing": (_drop("library"), ("config.json", "tinynet_zoo")),
    "model-args-unknown-key": (_set("model_args", "drop_rat", 0.2), ("drop_rat", "global_pool")),
    "global-pool-unknown": (_set("model_args", "global_pool", "median"), ("median", "avg")),
    "in-chans-disagree": (_set("model_args", "in_chans", 1), ("in_chans", "1")),
    "num-features-wrong": (_set("num_features", 999), ("num_features", "999")),
    "pretrained-cfg-classes-disagree": (_set("pretrained_cfg", "num_classes", 7), ("num_classes", "7")),
    "pretrained-cfg-not-object": (_set("pretrained_cfg", [1, 2]), ("pretrained_cfg",)),
    "metrics-not-object": (_set("metrics", "great"), ("metrics", "great")),
    "architecture-of-another-model": (_set("architecture", "tinynet_a"), ("tinynet_a", "does not build")),
}


def _edit_case(name: str, change, needles: tuple[str, ...]) -> None:
    @case("folders", f"config-{name}", needles=("config.json", *needles))
    def run(tmp: Path, change=change) -> None:
        _create(tmp, change)


for _name, (_change, _needles) in EDITS.items():
    _edit_case(_name, _change, _needles)


@case("folders", "config-deeply-nested", needles=("config.json", "nested"))
def deeply_nested(tmp: Path) -> None:
    folder = _folder(tmp)
    (folder / "config.json").write_text('{"library": "tinynet_zoo", "twist": ' + "[" * 200000 + "]" * 200000 + "}")
    _tz().create(folder)


@case("folders", "config-is-a-list", needles=("config.json", "tinynet_zoo"))
def config_list(tmp: Path) -> None:
    folder = _folder(tmp)
    (folder / "config.json").write_text("[1, 2, 3]")
    _tz().create(folder)


@case("folders", "config-binary-garbage", needles=("config.json", "JSON"))
def config_garbage(tmp: Path) -> None:
    folder = _folder(tmp)
    (folder / "config.json").write_bytes(b"\xff\xfe\x00garbage")
    _tz().create(folder)


@case("folders", "config-is-a-folder", needles=("config.json",))
def config_folder(tmp: Path) -> None:
    folder = _folder(tmp)
    (folder / "config.json").unlink()
    (folder / "config.json").mkdir()
    _tz().create(folder)


@case("folders", "weights-missing", needles=("model.safetensors",))
def weights_missing(tmp: Path) -> None:
    folder = _folder(tmp)
    (folder / "model.safetensors").unlink()
    _tz().create(folder)


@case("folders", "weights-truncated", needles=("model.safetensors",))
def weights_truncated(tmp: Path) -> None:
    folder = _folder(tmp)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[:len(data) // 2])
    _tz().create(folder)


def _other_weights(tmp: Path) -> Path:
    """The small folder's config beside the weights of another twist with 5 classes."""
    folder = _folder(tmp)
    shutil.copy(_template("other") / "model.safetensors", folder / "model.safetensors")
    return folder


@case("folders", "weights-of-another-twist-create", needles=("model.safetensors",))
def other_weights_create(tmp: Path) -> None:
    _tz().create(_other_weights(tmp))


@case("folders", "weights-of-another-twist-info", needles=("model.safetensors", "config.json"))
def other_weights_info(tmp: Path) -> None:
    _tz().model_info(_other_weights(tmp))


@case("folders", "weights-other-class-count-info", needles=("model.safetensors", "3 classes"))
def other_classes_info(tmp: Path) -> None:
    folder = _folder(tmp)  # the config describes the other twist, with 3 classes; its weights have 5
    twist = json.loads((_template("other") / "config.json").read_text())["twist"]
    _edit(folder, lambda c: (c.update(twist=twist), c["model_args"].update(twist=twist)))
    shutil.copy(_template("other") / "model.safetensors", folder / "model.safetensors")
    _tz().model_info(folder)


@case("folders", "info-label-names-string", needles=("config.json", "label_names"))
def info_labels(tmp: Path) -> None:
    _tz().model_info(_edit(_folder(tmp), _set("label_names", "abc")))


@case("folders", "info-mean-nan", needles=("config.json", "mean"))
def info_nan(tmp: Path) -> None:
    _tz().model_info(_edit(_folder(tmp), _set("pretrained_cfg", "mean", [float("nan")] * 3)))


@case("folders", "local-dir-spec-broken", needles=("config.json", "std"))
def local_dir(tmp: Path) -> None:
    _tz().create(f"local-dir:{_edit(_folder(tmp), _set('pretrained_cfg', 'std', [0, 0, 0]))}")


@case("folders", "cli-info-broken-folder", expect="result")
def cli_info(tmp: Path):
    folder = _edit(_folder(tmp), _set("label_names", "abc"))
    return judge_cli(cli("info", folder), ("config.json", "label_names"))


@case("folders", "cli-info-json-deeply-nested", expect="result")
def cli_info_nested(tmp: Path):
    folder = _folder(tmp)
    (folder / "config.json").write_text("[" * 200000 + "]" * 200000)
    return judge_cli(cli("info", folder, "--json"), ("config.json",))


@case("folders", "cli-predict-broken-folder", expect="result")
def cli_predict(tmp: Path):
    from PIL import Image
    Image.new("RGB", (40, 40), (200, 30, 30)).save(tmp / "red.png")
    folder = _edit(_folder(tmp), _set("pretrained_cfg", "input_size", [3, -32, -32]))
    return judge_cli(cli("predict", folder, tmp / "red.png", "--top", "1"), ("config.json", "-32"))


@case("folders", "symlinked-folder-loads", expect="result")
def symlinked_folder(tmp: Path):
    folder = _folder(tmp)
    os.symlink(folder, tmp / "link")
    model = _tz().create(tmp / "link")
    ok = model.pretrained_cfg["label_names"] == LABELS
    return ("OK", "loads through the link") if ok else ("WRONG", str(model.pretrained_cfg["label_names"]))


@case("folders", "symlinked-config-to-broken", needles=("config.json", "num_classes"))
def symlinked_config(tmp: Path) -> None:
    folder = _folder(tmp)
    broken = _edit(_folder(tmp, "broken"), _set("num_classes", -1))
    (folder / "config.json").unlink()
    os.symlink(broken / "config.json", folder / "config.json")
    _tz().create(folder)


@case("folders", "format1-classes-string", needles=("config.json", "label_names"))
def format1_string(tmp: Path) -> None:
    fixture = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "format1_twist"
    folder = Path(shutil.copytree(fixture, tmp / "old"))
    _edit(folder, _set("classes", "cdf"))
    _tz().create(folder)


def _model():
    import torch
    torch.manual_seed(0)
    model = _tz().create(_small(), num_classes=3)
    model.pretrained_cfg["label_names"] = LABELS
    return model


@case("folders", "extra-overrides-num-classes", needles=("extra", "num_classes"))
def extra_classes(tmp: Path) -> None:
    _tz().save_pretrained(_model(), tmp / "m", extra={"num_classes": 10})


@case("folders", "extra-overrides-label-names", needles=("extra", "label_names"))
def extra_labels(tmp: Path) -> None:
    _tz().save_pretrained(_model(), tmp / "m", extra={"label_names": ["a", "b", "c"]})


@case("folders", "extra-overrides-twist", needles=("extra", "twist"))
def extra_twist(tmp: Path) -> None:
    _tz().save_pretrained(_model(), tmp / "m", extra={"twist": {"r": 1, "d": 1, "w": 1, "resolution": 224}})


@case("folders", "extra-not-a-dict", needles=("extra", "dict"))
def extra_list(tmp: Path) -> None:
    _tz().save_pretrained(_model(), tmp / "m", extra=[("note", 1)])


@case("folders", "extra-own-key-kept", expect="result")
def extra_kept(tmp: Path):
    _tz().save_pretrained(_model(), tmp / "m", extra={"dataset": "pets"})
    config = json.loads((tmp / "m" / "config.json").read_text())
    model = _tz().create(tmp / "m")
    ok = config.get("dataset") == "pets" and model.num_classes == 3
    return ("OK", "extra key saved, folder loads") if ok else ("WRONG", str(config.get("dataset")))


def _save_beside(tmp: Path, hidden: str, names: tuple[str, ...]):
    """A user's hidden folder beside the save target; the save must leave it alone."""
    (tmp / "mymodel").mkdir()
    user = tmp / hidden
    user.mkdir()
    for name in names:
        (user / name).write_text(f"the user's {name}")
    kept = Kept(user)
    _tz().save_pretrained(_model(), tmp / "mymodel", overwrite=True)
    _tz().save_pretrained(_model(), tmp / "mymodel")
    lost = kept.lost()
    return ("LOST", f"deleted {lost}") if lost else ("OK", "the user's hidden folder is kept")


@case("folders", "hidden-backup-beside-save", expect="result")
def hidden_backup(tmp: Path):
    return _save_beside(tmp, ".mymodel.backup-2024", ("README.md", "config.json"))


@case("folders", "hidden-old-copy-beside-save", expect="result")
def hidden_old(tmp: Path):
    return _save_beside(tmp, ".mymodel.old.1", ("README.md", "config.json", "model.safetensors"))


@case("folders", "hidden-empty-named-like-staging", expect="result")
def hidden_empty(tmp: Path):
    (tmp / ".mymodel.keep").mkdir()
    _tz().save_pretrained(_model(), tmp / "mymodel")
    return ("OK", "kept") if (tmp / ".mymodel.keep").is_dir() else ("LOST", "the user's empty folder was removed")


SAVER = """
import sys, torch, tinynet_zoo as tz
torch.manual_seed(int(sys.argv[2]))
model = tz.create(tz.Twist(r=0.3, d=0.4, w=0.35, resolution=32), num_classes=3)
for i in range(4):
    tz.save_pretrained(model, sys.argv[1], metrics={"writer": int(sys.argv[2]), "i": i})
"""


@case("folders", "concurrent-saves-3x4", expect="result", timeout=300)
def concurrent(tmp: Path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    procs = [subprocess.Popen([sys.executable, "-c", SAVER, str(tmp / "shared"), str(k)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(3)]
    results = [(p.wait(timeout=280), p.stderr.read()) for p in procs]
    failed = [err.strip().splitlines()[-1] for code, err in results if code != 0]
    if failed:
        return "CRASH", f"{len(failed)} of 3 savers failed: {failed[0][:160]}"
    leftovers = [p.name for p in tmp.iterdir() if p.name.startswith(".shared.") and p.is_dir()]
    model = _tz().create(tmp / "shared")
    if leftovers or model.num_classes != 3:
        return "WRONG", f"leftovers {leftovers}"
    return "OK", "12 saves from 3 processes, folder valid"


# ---- run folders ----
@lru_cache(maxsize=None)
def _data() -> Path:
    """Two classes of 8 small generated images each."""
    import numpy as np
    from PIL import Image
    root = _CACHE / "data"
    rng = np.random.default_rng(0)
    for k, name in enumerate(("red", "blue")):
        (root / name).mkdir(parents=True)
        for i in range(8):
            pixels = rng.integers(0, 80, (32, 32, 3), dtype=np.uint8)
            pixels[..., 0 if k == 0 else 2] += 150
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@lru_cache(maxsize=None)
def _finished_run() -> Path:
    out = _CACHE / "run"
    _tz().finetune(MODEL, _data(), out, **RUN)
    return out


def _run_copy(tmp: Path) -> Path:
    return Path(shutil.copytree(_finished_run(), tmp / "run"))


def _user_files(folder: Path, *names: str) -> Kept:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(f"the user's own {name}")
    return Kept(folder)


def _overwrite(out: Path, kept: Kept, **extra):
    """finetune --overwrite into `out`: refused with the needles (OK), or the user's files lost (LOST)."""
    try:
        _tz().finetune(MODEL, _data(), out, overwrite=True, **{**RUN, **extra})
    finally:
        lost = kept.lost()
        if lost:
            return "LOST", f"deleted or replaced {lost[:3]}"
    return None


OVERWRITES = {  # case: (into a finished run's folder?, the user's files, needles)
    "overwrite-user-checkpoints-no-run-json": (False, ("checkpoints/my-epoch-3.pt", "checkpoints/notes.txt"),
                                               ("no run.json", "nothing was removed")),
    "overwrite-user-best-no-run-json": (False, ("best/model.onnx", "best/labels.txt"), ("no run.json", "best")),
    "overwrite-user-metrics-no-run-json": (False, ("metrics.jsonl", "curves.png"), ("no run.json", "metrics.jsonl")),
    "overwrite-run-with-user-file-in-checkpoints": (True, ("checkpoints/notes.txt",),
                                                    ("notes.txt", "nothing was removed")),
    "overwrite-run-with-user-file-in-generation": (True, ("checkpoints/epoch-0001/notes.txt",),
                                                   ("epoch-0001", "nothing was removed")),
    "overwrite-run-with-user-file-in-best": (True, ("best/labels.txt",), ("best", "nothing was removed")),
}


def _overwrite_case(name: str, into_run: bool, files: tuple[str, ...], needles: tuple[str, ...]) -> None:
    @case("runfolder", name, needles=needles)
    def run(tmp: Path):
        out = _run_copy(tmp) if into_run else tmp / "out"
        return _overwrite(out, _user_files(out, *files))


for _name, _spec in OVERWRITES.items():
    _overwrite_case(_name, *_spec)


@case("runfolder", "overwrite-malformed-run-json", needles=("run.json", "JSON"))
def malformed_overwrite(tmp: Path):
    out = _run_copy(tmp)
    (out / "run.json").write_text("{not json")
    return _overwrite(out, _user_files(out, "checkpoints/mine.txt"))


@case("runfolder", "overwrite-foreign-run-json", needles=("run.json", "not written by a tinynet_zoo run"))
def foreign_overwrite(tmp: Path):
    out = tmp / "out"
    _user_files(out, "checkpoints/model_best.pth")
    (out / "run.json").write_text('{"experiment": "mine", "lr": 0.1}')
    return _overwrite(out, Kept(out))


@case("runfolder", "new-run-over-foreign-run-json", needles=("run.json", "not written by a tinynet_zoo run"))
def foreign_alone(tmp: Path):
    out = tmp / "out"
    out.mkdir()
    (out / "run.json").write_text('{"experiment": "mine", "lr": 0.1}')
    kept = Kept(out)
    try:
        _tz().finetune(MODEL, _data(), out, **RUN)
    finally:
        if kept.lost():
            return "LOST", f"replaced {kept.lost()}"
    return None


@case("runfolder", "overwrite-checkpoints-symlink", needles=("checkpoints", "link"))
def symlink_checkpoints(tmp: Path):
    out = _run_copy(tmp)
    mine = tmp / "my-checkpoints"
    mine.mkdir()
    (mine / "weights.pt").write_text("mine")
    shutil.rmtree(out / "checkpoints")
    os.symlink(mine, out / "checkpoints")
    try:
        _tz().finetune(MODEL, _data(), out, overwrite=True, **RUN)
    finally:
        if not (out / "checkpoints").is_symlink() or not (mine / "weights.pt").is_file():
            return "LOST", "the user's checkpoints link (or what it points to) is gone"
    return None


@case("runfolder", "overwrite-run-json-is-a-folder", needles=("run.json", "folder"))
def run_json_folder(tmp: Path):
    out = tmp / "out"
    return _overwrite(out, _user_files(out, "run.json/notes.txt", "metrics.jsonl"))


@case("runfolder", "overwrite-own-run-keeps-user-notes", expect="result")
def overwrite_own(tmp: Path):
    out = _run_copy(tmp)
    kept = _user_files(out, "notes.txt")
    kept.files = {k: v for k, v in kept.files.items() if k.endswith("notes.txt")}
    _tz().finetune(MODEL, _data(), out, overwrite=True, **RUN)
    rows = (out / "metrics.jsonl").read_text().splitlines()
    if kept.lost():
        return "LOST", f"{kept.lost()}"
    return ("OK", "own run replaced, notes kept") if len(rows) == 1 else ("WRONG", f"{len(rows)} metric rows")


@case("runfolder", "resume-malformed-run-json", needles=("run.json", "JSON"))
def resume_malformed(tmp: Path) -> None:
    out = _run_copy(tmp)
    (out / "run.json").write_text('{"library": "tinynet_zoo", "kind": ')
    _tz().finetune(MODEL, _data(), out, resume=out, **{**RUN, "epochs": 2})


@case("runfolder", "resume-deeply-nested-run-json", needles=("run.json", "nested"))
def resume_nested(tmp: Path) -> None:
    out = _run_copy(tmp)
    (out / "run.json").write_text("[" * 200000 + "]" * 200000)
    _tz().finetune(MODEL, _data(), out, resume=out, **{**RUN, "epochs": 2})


@case("runfolder", "resume-run-json-of-another-model", needles=("run.json", "tinynet_a", "same model"))
def resume_other(tmp: Path) -> None:
    out = _run_copy(tmp)
    record = json.loads((out / "run.json").read_text())
    record.update(architecture="tinynet_a", twist={"r": 0.86, "d": 1.0, "w": 1.2, "resolution": 192,
                                                   "base": "efficientnet_b0", "rules": "tinynet"})
    (out / "run.json").write_text(json.dumps(record))
    _tz().finetune(MODEL, _data(), out, resume=out, **{**RUN, "epochs": 2})


@case("runfolder", "resume-run-json-list", needles=("run.json", "not written by a tinynet_zoo run"))
def resume_list(tmp: Path) -> None:
    out = _run_copy(tmp)
    (out / "run.json").write_text("[1, 2]")
    _tz().finetune(MODEL, _data(), out, resume=out, **{**RUN, "epochs": 2})


@case("runfolder", "cli-overwrite-user-checkpoints", expect="result", timeout=300)
def cli_overwrite(tmp: Path):
    out = tmp / "out"
    kept = _user_files(out, "checkpoints/epoch-0001/weights.safetensors", "best/model.safetensors")
    result = cli("finetune", MODEL, "--data", _data(), "--out", out, "--overwrite", "--scratch", "--resolution",
                 "32", "--epochs", "1", "--batch-size", "8")
    if kept.lost():
        return "LOST", f"deleted {kept.lost()[:2]}"
    return judge_cli(result, ("no run.json", "nothing was removed"))


@case("runfolder", "cli-resume-malformed-run-json", expect="result", timeout=300)
def cli_resume(tmp: Path):
    out = _run_copy(tmp)
    (out / "run.json").write_text("{")
    return judge_cli(cli("finetune", MODEL, "--data", _data(), "--out", out, "--resume", out, "--scratch",
                         "--resolution", "32", "--epochs", "2", "--batch-size", "8"), ("run.json", "JSON"))
