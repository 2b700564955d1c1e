"""Bad data refused or converted before work: every image opened by one helper (16-bit, float, transparency,
bombs), a validation fraction that would leave a class nothing to train on, recalibrate_bn's argument checks and
its held-out images, and command-line errors that name the command's flags rather than Python keywords."""
import numpy as np
import pytest
import torch
from PIL import Image

import tinynet_zoo as tz
from tinynet_zoo.calibration import batches
from tinynet_zoo.cli import main
from tinynet_zoo.cli.messages import for_command, subcommand
from tinynet_zoo.cli.parser import build_parser
from tinynet_zoo.errors import DataError, DataWarning
from tinynet_zoo.images import open_rgb
from tinynet_zoo.shrinking.run import data_resolution
from tinynet_zoo.training.data import ImageDataset, scan_folder

SMALL = tz.Twist(1.0, 0.5, 0.5, 32, base="efficientnet_lite0", rules="lite")


def folder(root, counts, size=32):
    """Class folders of noise PNGs: counts[class] images each."""
    for name, count in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.effect_noise((size, size), 20 + 10 * i).convert("RGB").save(root / name / f"{i}.png")
    return root


@pytest.fixture(autouse=True)
def small_bomb_limit(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)  # Pillow's limit, small so a bomb is quick to make


def bomb(path):
    Image.new("1", (300, 300)).save(path)  # over the limit: what a decompression bomb is to Pillow
    return path


# ------------------------------------------------------------------------------------------------------ images

def test_16_bit_png_is_scaled_by_257_not_clipped(tmp_path):
    ramp = (np.arange(32 * 32).reshape(32, 32) * 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "a.png")
    got = np.asarray(ImageDataset([(tmp_path / "a.png", 0)])[0][0])
    assert got.shape == (32, 32, 3)
    assert np.array_equal(got[..., 0], np.rint(ramp / 257).astype(np.uint8))  # the old code saturated to 255


def test_float_tiff_in_0_1_keeps_its_range_and_others_are_refused(tmp_path):
    ramp = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    Image.fromarray(ramp).save(tmp_path / "f.tif")
    got = np.asarray(open_rgb(tmp_path / "f.tif"))
    assert (got.min(), got.max()) == (0, 255)  # the old code made it constant 0
    Image.fromarray(ramp * 4).save(tmp_path / "f4.tif")
    with pytest.raises(DataError, match=r"float image .*f4.tif has values in \[0, 4\]; accepted: .*\[0, 1\]"):
        open_rgb(tmp_path / "f4.tif")
    ramp[0, 0] = np.nan
    Image.fromarray(ramp).save(tmp_path / "nan.tif")
    with pytest.raises(DataError, match="nan.tif holds NaN or infinite values"):
        open_rgb(tmp_path / "nan.tif")


def test_transparency_is_laid_on_white(tmp_path):
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(tmp_path / "a.png")
    assert np.asarray(open_rgb(tmp_path / "a.png")).min() == 255


def test_a_decompression_bomb_is_skipped_everywhere_with_a_warning(tmp_path):
    data = folder(tmp_path / "d", {"a": 3, "b": 3}, size=48)
    bomb(data / "a" / "huge.png")
    with pytest.warns(DataWarning, match=r"skipped 1 unreadable .*/huge.png is too large to open safely"):
        assert [p.name for p in scan_folder(data).skipped] == ["huge.png"]
    with pytest.warns(DataWarning, match="huge.png is too large"):
        found = batches(data, 32, minimum=1)  # the old code raised DecompressionBombError here
    assert sum(len(x) for x, _ in found) == 6
    assert data_resolution(data) == 48  # and here
    with pytest.raises(DataError, match="huge.png is too large to open safely"):
        open_rgb(data / "a" / "huge.png")


def test_predict_refuses_a_bomb_and_a_bad_float_image_in_one_line(tmp_path, capsys):
    tz.save_pretrained(tz.create(SMALL, num_classes=2), tmp_path / "model")
    Image.fromarray(np.full((8, 8), 9.0, np.float32)).save(tmp_path / "f.tif")
    for image, message in ((bomb(tmp_path / "huge.png"), "huge.png is too large to open safely"),
                           (tmp_path / "f.tif", "has values in [9, 9]")):
        assert main(["predict", str(tmp_path / "model"), str(image), "--top", "1"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err


# ---------------------------------------------------------------------------------------------------- finetune

def test_a_val_fraction_that_leaves_a_class_no_training_image_is_refused_before_work(tmp_path):
    data = folder(tmp_path / "d", {"a": 4, "b": 6})
    with pytest.raises(DataError, match=r"val_fraction 0.9 \(--val-fraction\) holds out all 4 images of class 'a'.*"
                                        r"at most 0.75"):
        tz.finetune("10M", data, tmp_path / "run", pretrained=False, resolution=32, epochs=1, val_fraction=0.9,
                    progress=False)
    assert not (tmp_path / "run").exists()
    splits = scan_folder(data, val_fraction=0.75)  # the suggested fraction works
    assert sorted(label for _, label in splits.train) == [0, 1, 1]


def test_classes_of_one_image_each_leave_nothing_to_validate(tmp_path):
    with pytest.raises(DataError, match=r"every class has a single image.*at least 2 per class"):
        scan_folder(folder(tmp_path / "d", {"a": 1, "b": 1}))


# ------------------------------------------------------------------------------------------------- recalibrate

@pytest.fixture
def model():
    torch.manual_seed(0)
    return tz.create(SMALL, num_classes=2)


def test_one_batch_is_split_by_image_so_no_image_is_both_fitted_and_scored(model):
    images = torch.randn(40, 3, 32, 32) + torch.arange(40).view(40, 1, 1, 1) * 100  # each image's mean names it
    seen = {True: [], False: []}
    model.conv_stem.register_forward_hook(
        lambda m, inputs, out: seen[m.training].extend(round(float(v) / 100) for v in inputs[0].mean((1, 2, 3))))
    tz.recalibrate_bn(model, [(images, torch.arange(40) % 2)], min_images=10)
    fitted, scored = set(seen[True]), set(seen[False])
    assert len(fitted) == 32 and len(scored) == 8 and not fitted & scored  # old: all 40 fitted and scored


@pytest.mark.parametrize("make, match", [
    (lambda x, y: [(x.index_fill(0, torch.tensor([2]), float("nan")), y)], "batch 0 holds NaN or infinite values"),
    (lambda x, y: [(x[:, :1], y)], "the data has 1-channel images but the model takes 3 channels"),
    (lambda x, y: [(x, y + 3)], r"labels must be class indices in \[0, 1\] for this model, got values in \[3, 4\]"),
    (lambda x, y: [(x, y.float())], r"labels must be an integer tensor of shape \(40,\).*float32"),
    (lambda x, y: [(x.to(torch.uint8), y)], "must be float image tensors .* torch.uint8"),
    (lambda x, y: [(x, y), (torch.randn(4, 3, 48, 48), y[:4])], r"batch 1 has images of shape \(3, 48, 48\)"),
])
def test_recalibration_data_is_checked(model, make, match):
    x, y = torch.randn(40, 3, 32, 32), torch.arange(40) % 2
    with pytest.raises(tz.InvalidArgumentError, match=match):
        tz.recalibrate_bn(model, make(x, y), min_images=10)


def test_one_image_is_too_few_to_recalibrate(model):
    result = tz.recalibrate_bn(model, [(torch.randn(1, 3, 32, 32), torch.tensor([1]))], min_images=10)
    assert (result.applied, result.images, result.before, result.after) == (False, 1, None, None)
    assert result.reason.startswith("1 images; at least 10 are needed")  # old: IndexError


def test_an_iterable_is_read_only_up_to_the_limit():
    read = []

    def loader():
        for i in range(100):
            read.append(i)
            yield torch.randn(10, 3, 32, 32), torch.arange(10) % 2

    found = batches(loader(), 32, limit=25, minimum=1)
    assert [len(x) for x, _ in found] == [10, 10, 5] and [len(y) for _, y in found] == [10, 10, 5]
    assert len(read) == 3  # old: all 100 batches read and kept


def test_calibration_batches_must_have_the_models_resolution(model):
    with pytest.raises(tz.InvalidArgumentError, match=r"calibration batch 0 has 48x48 images but the model takes "
                                                      r"32x32; resize"):
        batches([torch.randn(40, 3, 48, 48)], 32)
    with pytest.raises(tz.InvalidArgumentError, match="has 48x48 images but the model takes 32x32"):
        tz.recalibrate_bn(model, [(torch.randn(40, 3, 48, 48), torch.arange(40) % 2)], min_images=10)


def test_recalibration_arguments_are_checked(model):
    data = [(torch.randn(40, 3, 32, 32), torch.arange(40) % 2)]
    with pytest.raises(tz.InvalidArgumentError, match="model must be a torch module .* got str"):
        tz.recalibrate_bn("tinynet_e", data)
    with pytest.raises(tz.InvalidArgumentError, match="reference must be a torch module .* or None, got str"):
        tz.recalibrate_bn(model, data, reference="teacher")
    with pytest.raises(tz.InvalidArgumentError, match="the reference has 5 classes but the model 2"):
        tz.recalibrate_bn(model, data, reference=tz.create(SMALL, num_classes=5))
    with pytest.raises(tz.InvalidArgumentError, match="min_images must be an integer >= 10, got 0"):
        tz.recalibrate_bn(model, data, min_images=0)
    with pytest.raises(tz.InvalidArgumentError, match="has no batch-norm layers"):
        tz.recalibrate_bn(torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3)), data)


# --------------------------------------------------------------------------------------------------------- CLI

@pytest.mark.parametrize("command, message, shown", [
    ("export", "out.onnx already exists; pass overwrite=True (CLI: --overwrite) to replace it",
     "out.onnx already exists; pass --overwrite to replace it"),
    ("export", "cannot tell the format of x.bin; use .onnx or pass format=", "use .onnx or pass --format"),
    ("shrink", "started with budget='8M', compare=False, not budget='6M', compare=True",
     "started with --budget 8M, --no-compare, not --budget 6M, without --no-compare"),
    ("finetune", "use pretrained='inherit' or checkpoint_path=", "use --pretrained inherit or a model folder as MODEL"),
    ("formula", "formula 'tiny' gives r=0.5, d=1.2", "formula 'tiny' gives r=0.5, d=1.2"),  # not keywords
    ("finetune", "got Twist(r=1.0, resolution=64); pass resolution=32", "got Twist(r=1.0, resolution=64); pass "
                                                                         "--resolution 32"),  # code kept as it is
])
def test_cli_errors_name_the_commands_flags(command, message, shown):
    assert shown in for_command(message, subcommand(build_parser(), command))


def test_a_cli_error_from_the_library_shows_the_flag(tmp_path, capsys):
    tz.save_pretrained(tz.create(SMALL, num_classes=2), tmp_path / "model")
    (tmp_path / "m.onnx").write_bytes(b"mine")
    assert main(["export", str(tmp_path / "model"), "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "overwrite=" not in err, err
    assert (tmp_path / "m.onnx").read_bytes() == b"mine"
