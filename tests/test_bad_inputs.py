"""The standing bad-input suite: every case is refused with the package's own error type, and the message names
the offending value and what is accepted (or what to do). CLI cases exit with code 2 and one line on stderr."""
import json
import math
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinynet_zoo as tz
from tinynet_zoo.cli import main
from sample_data import export_digits
from tinynet_zoo.training.data import scan_folder

TINY = tz.Twist(0.3, 0.4, 0.35, 48)
E = tz.TinyNetZooError


@pytest.fixture(scope="module")
def p(tmp_path_factory):
    """Paths the cases point at: a plain file, an empty folder, data folders, a model folder, a run folder."""
    root = tmp_path_factory.mktemp("bad")
    (root / "file.txt").write_text("not a model")
    (root / "empty").mkdir()
    (root / "notjson.json").write_text("{not json")
    (root / "list.json").write_text("[1, 2]")
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    one = root / "oneclass" / "a"
    one.mkdir(parents=True)
    export_digits(root / "digits", size=32, limit=40)
    for image in sorted((root / "digits" / "0").iterdir())[:3]:
        (one / image.name).write_bytes(image.read_bytes())
    (root / "noimages" / "a").mkdir(parents=True)
    (root / "noimages" / "b").mkdir(parents=True)
    model = tz.create(TINY, num_classes=3)
    tz.save_pretrained(model, root / "model")
    (root / "user").mkdir()
    (root / "user" / "notes.txt").write_text("mine")
    return SimpleNamespace(root=root, file=root / "file.txt", empty=root / "empty", notjson=root / "notjson.json",
                           listjson=root / "list.json", image=root / "image.png", oneclass=root / "oneclass",
                           noimages=root / "noimages", digits=root / "digits", model=root / "model",
                           user=root / "user", module=model)


def _formula_file(p, data):
    path = p.root / f"formula-{abs(hash(json.dumps(data))) % 10**8}.json"
    path.write_text(json.dumps(data))
    return tz.for_flops(50e6, formula=path)


# (id, call, error type, message regex): the regex names the bad value and what is accepted or what to do
CASES = [
    # budgets and the formula
    ("budget-negative", lambda p: tz.for_flops(-5), tz.BudgetError, r"positive, finite number of MACs, got -5"),
    ("budget-zero", lambda p: tz.parse_budget(0), tz.BudgetError, "positive, finite number of MACs, got 0"),
    ("budget-zero-text", lambda p: tz.parse_budget("0M"), tz.BudgetError, "positive, finite number of MACs, got '0M'"),
    ("budget-nan", lambda p: tz.for_flops(math.nan), tz.BudgetError, "finite number of MACs, got nan"),
    ("budget-inf", lambda p: tz.for_flops(math.inf), tz.BudgetError, "finite number of MACs, got inf"),
    ("budget-bool", lambda p: tz.for_flops(True), tz.BudgetError, "number of MACs or a string like '100M', got True"),
    ("budget-none", lambda p: tz.for_flops(None), tz.BudgetError, "got None"),
    ("budget-list", lambda p: tz.parse_budget([1e8]), tz.BudgetError, r"got \[100000000.0\]"),
    ("budget-text", lambda p: tz.for_flops("lots"), tz.BudgetError, "cannot parse budget 'lots'; use .*'100M'"),
    ("budget-unit", lambda p: tz.for_flops("100T"), tz.BudgetError, "cannot parse budget '100T'"),
    ("budget-two-numbers", lambda p: tz.for_flops("1e8 2e8"), tz.BudgetError, "cannot parse budget '1e8 2e8'"),
    ("budget-just-below", lambda p: tz.for_flops(9.99e6), tz.BudgetError, r"9.99M is outside .* 10M to 4G"),
    ("budget-above", lambda p: tz.for_flops("5G"), tz.BudgetError, r"5G is outside .* 10M to 4G"),
    ("budget-no-suffix", lambda p: tz.for_flops("100"), tz.BudgetError, "100 MACs is outside.*did you mean 100M"),
    ("budget-macs-word", lambda p: tz.for_flops("100MACs"), tz.BudgetError, "did you mean 100M"),
    ("base-typo", lambda p: tz.for_flops(5e7, base="efficientnet_b1"), tz.UnknownNameError,
     "unknown base 'efficientnet_b1'; did you mean 'efficientnet_b0'"),
    ("base-none", lambda p: tz.for_flops(5e7, base=None), tz.UnknownNameError, "unknown base None; accepted: "),
    ("formula-typo", lambda p: tz.for_flops(5e7, formula="tinny"), tz.UnknownNameError,
     "unknown formula 'tinny'; did you mean 'tiny'"),
    ("formula-missing-file", lambda p: tz.for_flops(5e7, formula=p.root / "nope.json"), tz.InvalidArgumentError,
     "formula file .*nope.json' does not exist"),
    ("formula-bad-json", lambda p: tz.for_flops(5e7, formula=p.notjson), tz.InvalidArgumentError,
     "cannot read formula file .*notjson.json"),
    ("formula-not-object", lambda p: tz.for_flops(5e7, formula=p.listjson), tz.InvalidArgumentError,
     "not a valid formula file"),
    ("formula-wrong-kind", lambda p: _formula_file(p, {"kind": "spline"}), tz.InvalidArgumentError,
     "not a valid formula file"),
    ("formula-number", lambda p: tz.for_flops(5e7, formula=3), tz.InvalidArgumentError,
     "formula must be 'tiny', 'giant', a formula .json path or a Formula, got 3"),
    ("tolerance-negative", lambda p: tz.for_flops(5e7, tolerance=-0.1), tz.InvalidArgumentError,
     r"tolerance must be a finite number in \(0, 0.5\], got -0.1"),
    ("tolerance-nan", lambda p: tz.for_flops(5e7, tolerance=math.nan), tz.InvalidArgumentError, "got nan"),
    ("fit-two-points", lambda p: tz.fit_formula([(1e7, 0.5, 0.5), (2e7, 0.6, 0.6)]), tz.InvalidArgumentError,
     "at least 3 points, got 2"),
    ("fit-bad-point", lambda p: tz.fit_formula([(1e7, 0.5), (2e7, 0.6, 0.6), (3e7, 1, 1)]),
     tz.InvalidArgumentError, r"a Twist or \(macs, r, d\), got \(10000000.0, 0.5\)"),
    ("fit-kind", lambda p: tz.fit_formula([(1e7, .5, .5), (2e7, .6, .6), (3e7, .7, .7)], kind="cubic"),
     tz.UnknownNameError, "unknown formula kind 'cubic'; accepted: gpr, linear"),
    ("giant-nan", lambda p: tz.giant(math.nan), tz.InvalidArgumentError, "phi must be a finite number, got nan"),
    ("giant-text", lambda p: tz.giant("-1"), tz.InvalidArgumentError, "phi must be a finite number, got '-1'"),
    # twists
    ("twist-r-zero", lambda p: tz.Twist(0, 1, 1, 224), tz.InvalidArgumentError, r"Twist.r .*\(0, 8\], got 0"),
    ("twist-d-huge", lambda p: tz.Twist(1, 9, 1, 224), tz.InvalidArgumentError, r"Twist.d .*\(0, 8\], got 9"),
    ("twist-w-nan", lambda p: tz.Twist(1, 1, math.nan, 224), tz.InvalidArgumentError, "Twist.w .* got nan"),
    ("twist-w-text", lambda p: tz.Twist(1, 1, "1", 224), tz.InvalidArgumentError, "Twist.w .* got '1'"),
    ("twist-w-bool", lambda p: tz.Twist(1, 1, True, 224), tz.InvalidArgumentError, "Twist.w .* got True"),
    ("twist-res-small", lambda p: tz.Twist(1, 1, 1, 31), tz.InvalidArgumentError,
     r"Twist.resolution must be an integer in \[32, 1024\], got 31"),
    ("twist-res-float", lambda p: tz.Twist(1, 1, 1, 100.5), tz.InvalidArgumentError, "got 100.5"),
    ("twist-base", lambda p: tz.Twist(1, 1, 1, 224, base="resnet50"), tz.UnknownNameError,
     "unknown base 'resnet50'; accepted: efficientnet_b0, efficientnet_lite0"),
    ("twist-rules", lambda p: tz.Twist(1, 1, 1, 224, rules="lite0"), tz.UnknownNameError,
     "unknown rule set 'lite0'; did you mean 'lite'"),
    ("twist-json", lambda p: tz.Twist.from_json("{"), tz.InvalidArgumentError, "not a JSON Twist"),
    ("twist-dict", lambda p: tz.Twist.from_dict({"r": 1}), tz.InvalidArgumentError,
     "a Twist needs keys r, d, w, resolution"),
    ("twist-dict-extra", lambda p: tz.Twist.from_dict({"r": 1, "d": 1, "w": 1, "resolution": 224, "x": 1}),
     tz.InvalidArgumentError, "a Twist needs keys"),
    # names, tags, specs
    ("model-typo", lambda p: tz.create("tinynet_f"), tz.UnknownModelError, "unknown model 'tinynet_f'; did you mean"),
    ("model-case-typo", lambda p: tz.model_info("TINYNET_Q"), tz.UnknownModelError, "unknown model 'TINYNET_Q'"),
    ("model-empty", lambda p: tz.create(""), tz.InvalidArgumentError, "expected a model name .* got ''"),
    ("model-none", lambda p: tz.create(None), tz.InvalidArgumentError, "got None"),
    ("model-list", lambda p: tz.model_info(["tinynet_a"]), tz.InvalidArgumentError, r"got \['tinynet_a'\]"),
    ("tag-unknown", lambda p: tz.create("tinynet_a.bogus", pretrained=True), tz.UnknownTagError,
     "unknown checkpoint tag 'tinynet_a.bogus'; did you mean 'tinynet_a.in1k'"),
    ("tag-other-model", lambda p: tz.create("tinynet_b", pretrained="tinynet_a.in1k"), tz.UnknownTagError,
     "'tinynet_a.in1k' is for tinynet_a, not tinynet_b; accepted: tinynet_b.in1k"),
    ("tag-contradiction", lambda p: tz.create("tinynet_a.in1k", pretrained="tinynet_b.in1k"),
     tz.InvalidArgumentError, "the name asks for checkpoint 'tinynet_a.in1k' but pretrained='tinynet_b.in1k'"),
    ("tag-and-file", lambda p: tz.create("tinynet_e", pretrained="tinynet_e.in1k", checkpoint_path=p.file),
     tz.InvalidArgumentError, "checkpoint_path loads a local file: leave out pretrained"),
    ("tag-and-inherit", lambda p: tz.create("tinynet_e.in1k", pretrained="inherit"), tz.InvalidArgumentError,
     "'inherit' cuts weights .* tag 'tinynet_e.in1k' does not apply"),
    ("pretrained-yes", lambda p: tz.create("tinynet_e", pretrained="yes"), tz.InvalidArgumentError,
     "pretrained must be False, True, 'inherit' or a checkpoint tag .* got 'yes'"),
    ("pretrained-twist", lambda p: tz.create(TINY, pretrained=True), tz.CheckpointNotFoundError,
     "an uncatalogued twist has no hosted checkpoint; use pretrained='inherit'"),
    ("pretrained-shrunken", lambda p: tz.create("efficientnet_b-2", pretrained=True), tz.CheckpointNotFoundError,
     "no hosted checkpoint exists for efficientnet_b-2; use pretrained='inherit'"),
    ("hub-malformed", lambda p: tz.create("hf-hub:justaname"), tz.InvalidArgumentError,
     "expected 'hf-hub:user/repo' .* got 'hf-hub:justaname'"),
    ("hub-empty-revision", lambda p: tz.create("hf-hub:me/repo@"), tz.InvalidArgumentError, "got 'hf-hub:me/repo@'"),
    ("hub-offline", lambda p: tz.create("hf-hub:me/absent", cache_dir=p.empty), tz.CheckpointNotFoundError,
     "me/absent@main is not in the Hugging Face cache"),
    ("folder-missing", lambda p: tz.load_pretrained(p.root / "nowhere"), tz.InvalidArgumentError,
     "nowhere' does not exist"),
    ("folder-empty", lambda p: tz.load_pretrained(p.empty), tz.InvalidArgumentError,
     "is not a model folder .*config.json and model.safetensors"),
    ("folder-is-file", lambda p: tz.create(Path(p.file)), tz.InvalidArgumentError, "is not a model folder"),
    ("local-dir-missing", lambda p: tz.create("local-dir:/nowhere/x"), tz.InvalidArgumentError,
     "'/nowhere/x' does not exist"),
    ("folder-with-pretrained", lambda p: tz.create(p.model, pretrained="inherit"), tz.InvalidArgumentError,
     "carries its own weights: pretrained, checkpoint_path and features_only do not apply"),
    ("module-with-options", lambda p: tz.create(p.module, num_classes=5), tz.InvalidArgumentError,
     "a built module is used as it is; num_classes cannot change it"),
    ("module-not-ours-info", lambda p: tz.model_info(__import__("torch").nn.Linear(2, 2)),
     tz.InvalidArgumentError, "was not made by tinynet_zoo.create"),
    ("list-pattern", lambda p: tz.list_models(3), tz.InvalidArgumentError, "shell wildcard string .* got 3"),
    # create's arguments
    ("classes-negative", lambda p: tz.create(TINY, num_classes=-1), tz.InvalidArgumentError,
     "num_classes must be an integer >= 0, got -1"),
    ("classes-float", lambda p: tz.create(TINY, num_classes=2.5), tz.InvalidArgumentError, "got 2.5"),
    ("classes-bool", lambda p: tz.create(TINY, num_classes=True), tz.InvalidArgumentError, "got True"),
    ("classes-text", lambda p: tz.create(TINY, num_classes="10"), tz.InvalidArgumentError, "got '10'"),
    ("chans-zero", lambda p: tz.create(TINY, in_chans=0), tz.InvalidArgumentError,
     "in_chans must be an integer >= 1, got 0"),
    ("features-only-text", lambda p: tz.create(TINY, features_only="yes"), tz.InvalidArgumentError,
     "features_only must be True or False, got 'yes'"),
    ("kwarg-typo", lambda p: tz.create(TINY, drop_rat=0.1), tz.UnknownNameError,
     "unknown keyword argument 'drop_rat'; did you mean 'drop_rate'"),
    ("kwarg-features", lambda p: tz.create(TINY, out_indices=(1,)), tz.UnknownNameError,
     "unknown keyword argument 'out_indices'; accepted: drop_path_rate, drop_rate, global_pool"),
    ("drop-rate-one", lambda p: tz.create(TINY, drop_rate=1.0), tz.InvalidArgumentError,
     r"drop_rate must be a finite number in \[0, 1\), got 1.0"),
    ("drop-path-nan", lambda p: tz.create(TINY, drop_path_rate=math.nan), tz.InvalidArgumentError, "got nan"),
    ("global-pool", lambda p: tz.create(TINY, global_pool="mean"), tz.UnknownNameError,
     "unknown global_pool 'mean'; did you mean 'max'"),
    ("out-indices-range", lambda p: tz.create(TINY, features_only=True, out_indices=(5,)), tz.InvalidArgumentError,
     r"out_indices item must be an integer in \[0, 4\], got 5"),
    ("out-indices-text", lambda p: tz.create(TINY, features_only=True, out_indices="12"), tz.InvalidArgumentError,
     "out_indices must be a non-empty sequence of ints in 0..4, got '12'"),
    ("checkpoint-missing", lambda p: tz.create(TINY, checkpoint_path=p.root / "x.safetensors"),
     tz.CheckpointNotFoundError, "x.safetensors does not exist or is not a file"),
    ("checkpoint-garbage", lambda p: tz.create(TINY, checkpoint_path=p.file), tz.IncompatibleCheckpointError,
     "cannot read checkpoint .*file.txt"),
    ("checkpoint-folder", lambda p: tz.create(TINY, checkpoint_path=p.empty), tz.CheckpointNotFoundError,
     "empty does not exist or is not a file"),
    ("checkpoint-other-arch", lambda p: tz.create("tinynet_e", checkpoint_path=p.model / "model.safetensors"),
     tz.IncompatibleCheckpointError, "checkpoint does not fit this architecture: missing keys"),
    # preprocessing, freezing
    ("data-config-key", lambda p: tz.data_config(TINY, crop=0.9), tz.UnknownNameError,
     "unknown data config key 'crop'; did you mean 'crop_pct'"),
    ("data-config-crop", lambda p: tz.data_config(TINY, crop_pct=1.5), tz.InvalidArgumentError,
     r"crop_pct must be a finite number in \(0, 1\], got 1.5"),
    ("data-config-size", lambda p: tz.data_config(TINY, input_size=(3, 0, 0)), tz.InvalidArgumentError,
     r"input_size must be \(3, H, W\) with H and W in \[32, 1024\], got \(3, 0, 0\)"),
    ("data-config-mean", lambda p: tz.data_config(TINY, mean=(0.5,)), tz.InvalidArgumentError,
     r"mean must be 3 finite numbers \(one per channel\), got \(0.5,\)"),
    ("data-config-interp", lambda p: tz.data_config(TINY, interpolation="cubic"), tz.UnknownNameError,
     "unknown interpolation 'cubic'; did you mean 'bicubic'"),
    ("transforms-train", lambda p: tz.transforms(TINY, train="yes"), tz.InvalidArgumentError,
     "train must be True or False, got 'yes'"),
    ("freeze-part", lambda p: tz.freeze(tz.create(TINY), "block.1"), tz.UnknownNameError,
     "unknown part to freeze until 'block.1'; did you mean 'blocks.1'"),
    ("freeze-not-module", lambda p: tz.freeze("tinynet_e"), tz.InvalidArgumentError,
     "freeze takes a built model .* got 'tinynet_e'"),
    ("freeze-until-number", lambda p: tz.freeze(tz.create(TINY), 4), tz.InvalidArgumentError,
     "until must be a part name such as 'blocks.4', got 4"),
    # training
    ("train-lr-nan", lambda p: tz.TrainConfig(lr=math.nan), tz.InvalidArgumentError,
     "lr must be a finite number > 0, got nan"),
    ("train-lr-zero", lambda p: tz.TrainConfig(lr=0), tz.InvalidArgumentError, "lr must be a finite number > 0"),
    ("train-epochs", lambda p: tz.TrainConfig(epochs=0), tz.InvalidArgumentError, "epochs must be an integer >= 1, got 0"),
    ("train-batch", lambda p: tz.TrainConfig(batch_size=1.5), tz.InvalidArgumentError, "got 1.5"),
    ("train-smoothing", lambda p: tz.TrainConfig(label_smoothing=1), tz.InvalidArgumentError,
     r"label_smoothing must be a finite number in \[0, 1\), got 1"),
    ("train-ema", lambda p: tz.TrainConfig(ema_decay=1.0), tz.InvalidArgumentError,
     r"ema_decay \(or 'auto', or None for no EMA\) must be a finite number in \(0, 1\), got 1.0"),
    ("train-amp", lambda p: tz.TrainConfig(amp="fp8"), tz.UnknownNameError,
     "unknown amp mode 'fp8'; did you mean 'fp16'"),
    ("train-workers", lambda p: tz.TrainConfig(workers=-1), tz.InvalidArgumentError, "workers must be an integer >= 0"),
    ("train-progress", lambda p: tz.TrainConfig(progress="no"), tz.InvalidArgumentError,
     "progress must be True or False, got 'no'"),
    ("finetune-option", lambda p: tz.finetune(TINY, p.digits, epoch=3), tz.UnknownNameError,
     "unknown training option 'epoch'; did you mean 'epochs'"),
    ("finetune-data-missing", lambda p: tz.finetune(TINY, p.root / "nodata"), tz.DataError,
     "data folder .*nodata does not exist or is not a folder"),
    ("finetune-data-file", lambda p: tz.finetune(TINY, p.file), tz.DataError, "file.txt does not exist or is not a folder"),
    ("finetune-data-empty", lambda p: tz.finetune(TINY, p.empty), tz.DataError, "empty is empty: expected one sub-folder"),
    ("finetune-one-class", lambda p: tz.finetune(TINY, p.oneclass), tz.DataError,
     "has a single class .*; classification needs at least two"),
    ("finetune-no-images", lambda p: tz.finetune(TINY, p.noimages), tz.DataError,
     "class folder .* has no images .*accepted extensions"),
    ("finetune-resolution", lambda p: tz.finetune(TINY, p.digits, resolution=8), tz.InvalidArgumentError,
     r"resolution must be an integer in \[32, 1024\], got 8"),
    ("finetune-val-fraction", lambda p: tz.finetune(TINY, p.digits, val_fraction=1.5), tz.InvalidArgumentError,
     r"val_fraction must be a finite number in \(0, 1\), got 1.5"),
    ("finetune-freeze", lambda p: tz.finetune(TINY, p.digits, freeze_until="stem", epochs=1, pretrained=False),
     tz.UnknownNameError, "unknown part to freeze until 'stem'"),
    ("finetune-resume-missing", lambda p: tz.finetune(TINY, p.digits, resume=p.root / "norun", pretrained=False),
     tz.IncompatibleCheckpointError, "cannot resume from .*norun: it does not exist"),
    ("finetune-resume-empty", lambda p: tz.finetune(TINY, p.digits, resume=p.empty, pretrained=False),
     tz.IncompatibleCheckpointError, "holds no complete checkpoint"),
    ("finetune-out-file", lambda p: tz.finetune(TINY, p.digits, p.file, pretrained=False, epochs=1),
     tz.InvalidArgumentError, "run folder .*file.txt' is a file, not a folder"),
    ("finetune-folder-pretrained", lambda p: tz.finetune(p.model, p.digits, pretrained=False),
     tz.InvalidArgumentError, "brings its own weights; pretrained=False does not apply"),
    # sharing
    ("save-into-user-folder", lambda p: tz.save_pretrained(p.module, p.user), tz.InvalidArgumentError,
     "holds files that are not a tinynet_zoo model folder .*notes.txt.*overwrite=True"),
    ("save-onto-file", lambda p: tz.save_pretrained(p.module, p.file), tz.InvalidArgumentError,
     "file.txt is a file, not a folder"),
    ("save-backbone", lambda p: tz.save_pretrained(tz.create(TINY, features_only=True), p.root / "bb"),
     tz.InvalidArgumentError, "save the classifier model, not a features_only backbone"),
    ("save-foreign-module", lambda p: tz.save_pretrained(__import__("torch").nn.Linear(2, 2), p.root / "lin"),
     tz.InvalidArgumentError, "only models made by tinynet_zoo.create can be saved"),
    ("save-overwrite-text", lambda p: tz.save_pretrained(p.module, p.root / "o", overwrite="yes"),
     tz.InvalidArgumentError, "overwrite must be True or False, got 'yes'"),
    ("save-metrics", lambda p: tz.save_pretrained(p.module, p.root / "m", metrics=[1]), tz.InvalidArgumentError,
     r"metrics must be a dict of JSON values, got \[1\]"),
    ("push-repo", lambda p: tz.push_to_hub(p.module, "no-slash"), tz.InvalidArgumentError,
     "expected 'hf-hub:user/repo' .*got 'no-slash'"),
    ("push-revision", lambda p: tz.push_to_hub(p.module, "me/repo@main"), tz.InvalidArgumentError,
     "repo_id must be 'user/name', got 'me/repo@main'"),
    # search
    ("search-trials", lambda p: tz.run_search(p.digits, "12M", 0, p.root / "s", base_resolution=48),
     tz.InvalidArgumentError, "trials must be an integer >= 1, got 0"),
    ("search-budget", lambda p: tz.run_search(p.digits, "1G", 2, p.root / "s", base_resolution=48), tz.BudgetError,
     "budget 1.00G is outside .* search range"),
    ("search-backend", lambda p: tz.run_search(p.digits, "12M", 2, p.root / "s", base_resolution=48,
                                               backend="dask"), tz.UnknownNameError,
     "unknown search backend 'dask'; accepted: local, ray"),
    ("search-data", lambda p: tz.run_search(p.root / "nodata", "12M", 2, p.root / "s", base_resolution=48),
     tz.DataError, "nodata does not exist or is not a folder"),
    ("search-lr", lambda p: tz.run_search(p.digits, "12M", 2, p.root / "s", base_resolution=48, lr=-1),
     tz.InvalidArgumentError, r"lr must be a finite number in \(0, 10\), got -1"),
    ("search-report-empty", lambda p: tz.search_report(p.empty), tz.InvalidArgumentError,
     "no search results in .*empty"),
    ("search-report-file", lambda p: tz.search_report(p.file), tz.InvalidArgumentError, "no search results in"),
]

CLI_CASES = [
    ("cli-unknown-command", ["frobnicate"], "invalid choice: 'frobnicate'"),
    ("cli-info-typo", ["info", "tinynet_z"], "unknown model 'tinynet_z'; did you mean"),
    ("cli-info-tag", ["info", "tinynet_a.bogus"], "unknown checkpoint tag 'tinynet_a.bogus'"),
    ("cli-formula-text", ["formula", "lots"], "cannot parse budget 'lots'"),
    ("cli-formula-range", ["formula", "1T"], "cannot parse budget '1T'"),
    ("cli-formula-low", ["formula", "9.99M"], "9.99M is outside the supported range 10M to 4G"),
    ("cli-formula-base", ["formula", "50M", "--base", "b0"], "unknown base 'b0'"),
    ("cli-formula-file", ["formula", "50M", "--formula", "missing.json"], "formula file 'missing.json' does not exist"),
    ("cli-list-flag", ["list", "--colour"], "unrecognized arguments: --colour"),
    ("cli-predict-image", ["predict", "efficientnet_lite0", "{image}"], "cannot read image"),
    ("cli-predict-missing", ["predict", "efficientnet_lite0", "{root}/none.jpg"], "cannot read image"),
    ("cli-predict-top", ["predict", "efficientnet_lite0", "{png}", "--top", "0"],
     r"--top must be an integer in \[1, 1000\], got 0"),
    ("cli-download-twist", ["download", "50M"], "download takes a catalogued name or name.tag, got '50M'"),
    ("cli-finetune-lr", ["finetune", "10M", "--data", "{digits}", "--lr", "nan"], "lr must be a finite number > 0"),
    ("cli-finetune-epochs", ["finetune", "10M", "--data", "{digits}", "--epochs", "0"], "epochs must be an integer"),
    ("cli-finetune-data", ["finetune", "10M", "--data", "{root}/nodata"], "does not exist or is not a folder"),
    ("cli-finetune-resume", ["finetune", "10M", "--data", "{digits}", "--resume", "{root}/nope"],
     "cannot resume from .*nope: it does not exist"),
    ("cli-finetune-model", ["finetune", "tinynet_zz", "--data", "{digits}"], "unknown model 'tinynet_zz'"),
    ("cli-search-missing", ["search", "--data", "{digits}"], "a search needs --budgets, --out"),
    ("cli-search-report", ["search", "report", "{empty}"], "no search results in"),
    ("cli-bench-backend", ["bench", "10M", "--backends", "eagr"], "unknown bench backend 'eagr'; did you mean 'eager'"),
]


@pytest.mark.parametrize("call, error, match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_clearly(p, call, error, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error, match=match) as info:
            call(p)
    assert isinstance(info.value, E)


@pytest.fixture(scope="module")
def png(p):
    from PIL import Image

    path = p.root / "real.png"
    Image.new("RGB", (40, 40)).save(path)
    return path


@pytest.mark.parametrize("argv, match", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_bad_cli_input_is_one_line_and_exit_2(p, png, argv, match, capsys):
    names = dict(root=p.root, digits=p.digits, empty=p.empty, image=p.image, png=png)
    argv = [a.format(**names) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert __import__("re").search(match, err), err


def test_an_image_over_pillows_safety_limit_is_refused_in_one_line(png, monkeypatch, capsys):
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # the 40x40 test image is then a "decompression bomb"
    assert main(["predict", "efficientnet_lite0", str(png)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is too large to open safely" in err and "downscale it" in err


OWN_ERRORS = (tz.TinyNetZooError,)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.text(max_size=12),
                 st.none(), st.booleans(), st.lists(st.integers(), max_size=2)))
def test_budgets_parse_to_their_value_or_raise_our_error_naming_it(budget):
    try:
        value = tz.parse_budget(budget)
    except tz.BudgetError as exc:
        assert repr(budget) in str(exc)
        assert not _is_number(budget) or not math.isfinite(budget) or budget <= 0  # refused only when invalid
        return
    assert isinstance(value, float) and math.isfinite(value) and value > 0
    if _is_number(budget):
        assert value == float(budget)
    else:
        assert isinstance(budget, str)
    from tinynet_zoo.core.formula import MAX_BUDGET, MIN_BUDGET

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            twist = tz.for_flops(budget, tolerance=0.05)
        except tz.BudgetError:
            assert not MIN_BUDGET <= value <= MAX_BUDGET  # refused only outside the supported range
            return
    assert MIN_BUDGET <= value <= MAX_BUDGET and twist.macs <= value
    assert twist.macs >= 0.95 * value or any(issubclass(w.category, tz.BudgetWarning) for w in caught)


NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 2000), st.text(max_size=4),
                    st.none(), st.booleans())


@settings(max_examples=200, deadline=None)
@given(NUMBERS, NUMBERS, NUMBERS, NUMBERS, st.sampled_from(["efficientnet_b0", "efficientnet_lite0", "x", 3]),
       st.sampled_from(["tinynet", "efficientnet", "lite", "", None]))
def test_twist_keeps_what_it_was_given_or_raises_our_error(r, d, w, resolution, base, rules):
    try:
        twist = tz.Twist(r, d, w, resolution, base, rules)
    except OWN_ERRORS as exc:
        assert str(exc)  # a message, and one of ours
        return
    assert all(_is_number(v) and math.isfinite(v) and v > 0 for v in (r, d, w)) and type(resolution) is int
    assert (twist.r, twist.d, twist.w, twist.resolution, twist.base) == (r, d, w, resolution, base)
    from tinynet_zoo.core.flops import count_macs

    assert twist.macs == count_macs(twist.arch, resolution) > 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["num_classes", "in_chans", "drop_rate", "drop_path_rate", "global_pool",
                                        "features_only", "pretrained", "out_indices", "dropout", "classes"]),
                       NUMBERS, max_size=3))
def test_create_kwargs_are_applied_or_raise_our_errors(kwargs):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = tz.create(TINY, **kwargs)
    except OWN_ERRORS:
        return
    import torch

    if kwargs.get("features_only"):
        assert model.feature_info.channels()
        return
    asked = kwargs.get("num_classes")
    assert model.num_classes == (1000 if asked is None else asked)  # None: the default (a checkpoint's, else 1000)
    in_chans = kwargs.get("in_chans", 3)
    in_chans = 3 if in_chans is None else in_chans
    assert model.conv_stem.in_channels == in_chans
    if "drop_rate" in kwargs:
        assert model.drop_rate == kwargs["drop_rate"]
    with torch.no_grad():
        out = model.eval()(torch.zeros(1, in_chans, 48, 48))
    if "global_pool" not in kwargs:  # pooled: one row of logits (of features without a head)
        assert out.shape == (1, model.num_classes or model.num_features)


def test_scan_folder_names_its_arguments(p):
    with pytest.raises(tz.InvalidArgumentError, match=r"val_fraction must be a finite number in \(0, 1\), got 0"):
        scan_folder(p.digits, val_fraction=0)
