"""Bad-input cases for the data paths: finetune's folder split, shrink's options and reruns, recalibrate_bn's
arguments and every image the package opens (16-bit, float, palette, CMYK, alpha, tiny, huge, truncated, bombs).

Shrink cases replace the training steps with a sentinel: a bad option must be refused before any step trains
(a case that reaches training is WRONG), so no case here trains a network."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

from probe import Kept, case, cli, judge_cli

SMALL = dict(r=1.0, d=0.5, w=0.5)


class WorkStarted(Exception):
    """A shrink step began training although an option was bad."""


# ----------------------------------------------------------------------------------------------------- helpers

def images(root: Path, counts: dict[str, int], size: int = 32) -> Path:
    """An ImageFolder of random RGB PNGs: counts[class] images per class."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, count in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


def one_image(root: Path, image, name: str) -> Path:
    """A two-class folder where class 'a' holds `image` (saved as `name`) and class 'b' three random PNGs."""
    images(root, {"b": 3})
    (root / "a").mkdir(parents=True, exist_ok=True)
    image.save(root / "a" / name)
    return root / "a" / name


def pixels(path: Path):
    """The image as the training data set hands it over (before transforms), as an array."""
    import numpy as np
    from tinynet_zoo.training.data import ImageDataset

    return np.asarray(ImageDataset([(path, 0)])[0][0])


def bomb(path: Path) -> Path:
    """A small PNG file whose header claims 12,000 x 12,000 pixels (a decompression bomb)."""
    from PIL import Image

    Image.new("1", (12000, 12000)).save(path)
    return path


def tiny_model(classes: int = 2, labels=None, batchnorm: bool = True):
    import tinynet_zoo as tz

    model = tz.create(tz.Twist(**SMALL, resolution=32, base="efficientnet_lite0", rules="lite"), num_classes=classes)
    if labels is not None:
        model.pretrained_cfg["label_names"] = list(labels)
    return model


def teacher_folder(tmp: Path, classes: int = 2, labels=None) -> Path:
    import tinynet_zoo as tz

    tz.save_pretrained(tiny_model(classes, labels), tmp / "teacher")
    return tmp / "teacher"


def no_training(func):
    """Run func with shrink's training and inheritance steps replaced by a sentinel; WRONG when one is reached."""
    from tinynet_zoo.shrinking import run as shrink_run

    def stop(*args, **kwargs):
        raise WorkStarted()
    saved = shrink_run._train, shrink_run._init
    shrink_run._train = shrink_run._init = stop
    try:
        func()
    except WorkStarted:
        return "WRONG", "a shrink step started work before the bad option was refused"
    finally:
        shrink_run._train, shrink_run._init = saved
    return "WRONG", "accepted"


def shrink(tmp: Path, data: Path | None = None, **kwargs):
    import tinynet_zoo as tz

    data = data or images(tmp / "data", {"a": 20, "b": 20})
    options = {"budget": "5M", "teacher": "efficientnet_lite0", "epochs": 1, "resolution": 32, **kwargs}
    return no_training(lambda: tz.shrink(data, tmp / "out", **options))


def warned(func):
    """func's result and the messages of the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = func()
    return result, [str(w.message) for w in caught]


# ------------------------------------------------------------------------------------------------------ images

@case("images", "16-bit PNG keeps its contrast (scaled by 257, not clipped)", expect="result")
def _(tmp):
    import numpy as np
    from PIL import Image

    ramp = (np.arange(32 * 32).reshape(32, 32) * 64).astype(np.uint16)
    path = tmp / "a16.png"
    Image.fromarray(ramp).save(path)
    got = pixels(path)
    want = np.rint(ramp / 257).astype(np.uint8)
    ok = np.abs(got[..., 0].astype(int) - want).max() <= 1
    return ("OK", "scaled by 257") if ok else ("WRONG", f"{(got == 255).mean():.0%} of pixels saturated")


@case("images", "float TIFF in [0, 1] keeps its values", expect="result")
def _(tmp):
    import numpy as np
    from PIL import Image

    ramp = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    Image.fromarray(ramp).save(tmp / "f.tif")
    got = pixels(tmp / "f.tif")
    return ("OK", f"values {got.min()}..{got.max()}") if got.max() >= 250 and got.min() <= 5 else \
        ("WRONG", f"turned constant: {got.min()}..{got.max()}")


@case("images", "float TIFF outside [0, 1] is refused", needles=("f3.tif", "[0, 1]"))
def _(tmp):
    import numpy as np
    from PIL import Image

    Image.fromarray(np.full((32, 32), 3.5, np.float32)).save(tmp / "f3.tif")
    pixels(tmp / "f3.tif")


@case("images", "float TIFF with NaN is refused", needles=("nan",))
def _(tmp):
    import numpy as np
    from PIL import Image

    data = np.zeros((32, 32), np.float32)
    data[3, 3] = np.nan
    Image.fromarray(data).save(tmp / "nan.tif")
    pixels(tmp / "nan.tif")


@case("images", "32-bit integer PNG beyond 16 bits is refused", needles=("i32.tif", "values"))
def _(tmp):
    import numpy as np
    from PIL import Image

    Image.fromarray(np.full((32, 32), 1 << 20, np.int32)).save(tmp / "i32.tif")
    pixels(tmp / "i32.tif")


@case("images", "transparent palette GIF is laid on white", expect="result")
def _(tmp):
    from PIL import Image

    image = Image.new("P", (16, 16), 0)
    image.putpalette([0, 0, 0] * 256)
    image.info["transparency"] = 0
    image.save(tmp / "p.gif", transparency=0)
    got = pixels(tmp / "p.gif")
    return ("OK", "white") if got.min() == 255 else ("WRONG", f"transparent pixels became {got[0, 0].tolist()}")


@case("images", "transparent RGBA PNG is laid on white", expect="result")
def _(tmp):
    from PIL import Image

    Image.new("RGBA", (16, 16), (0, 0, 0, 0)).save(tmp / "rgba.png")
    got = pixels(tmp / "rgba.png")
    return ("OK", "white") if got.min() == 255 else ("WRONG", f"transparent pixels became {got[0, 0].tolist()}")


@case("images", "CMYK JPEG becomes RGB", expect="result")
def _(tmp):
    from PIL import Image

    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp / "c.jpg")
    got = pixels(tmp / "c.jpg")
    return ("OK", "red") if got.shape == (16, 16, 3) and got[0, 0, 0] > 200 and got[0, 0, 1] < 60 else \
        ("WRONG", f"{got.shape} {got[0, 0].tolist()}")


@case("images", "grayscale and 1-bit images become 3 channels", expect="result")
def _(tmp):
    from PIL import Image

    Image.new("L", (16, 16), 100).save(tmp / "l.png")
    Image.new("1", (16, 16), 1).save(tmp / "b.png")
    shapes = {pixels(tmp / "l.png").shape, pixels(tmp / "b.png").shape}
    return ("OK", "RGB") if shapes == {(16, 16, 3)} else ("WRONG", str(shapes))


@case("images", "1x1 image goes through the model's transform", expect="result")
def _(tmp):
    from PIL import Image
    from tinynet_zoo.preprocess import transforms
    from tinynet_zoo.training.data import ImageDataset

    Image.new("RGB", (1, 1), (10, 20, 30)).save(tmp / "px.png")
    shape = tuple(ImageDataset([(tmp / "px.png", 0)], transforms(tiny_model()))[0][0].shape)
    return ("OK", str(shape)) if shape == (3, 32, 32) else ("WRONG", str(shape))


@case("images", "decompression bomb in a training folder is skipped with a warning", expect="result")
def _(tmp):
    from tinynet_zoo.training.data import scan_folder

    images(tmp / "d", {"a": 3, "b": 3})
    bomb(tmp / "d" / "a" / "huge.png")
    splits, messages = warned(lambda: scan_folder(tmp / "d"))
    ok = len(splits.skipped) == 1 and any("huge.png" in m or "skipped 1" in m for m in messages)
    return ("OK", messages[0][:150]) if ok else ("WRONG", f"skipped {splits.skipped}, warnings {messages}")


@case("images", "decompression bomb in a calibration folder is skipped, not a crash", expect="result")
def _(tmp):
    from tinynet_zoo.calibration import batches

    images(tmp / "c", {"x": 4})
    bomb(tmp / "c" / "x" / "huge.png")
    found, messages = warned(lambda: batches(tmp / "c", 32, minimum=1))
    count = sum(len(x) for x, _ in found)
    return ("OK", f"{count} images; {messages[:1]}") if count == 4 and messages else ("WRONG", f"{count} {messages}")


@case("images", "decompression bomb while shrink measures the data's resolution", expect="result")
def _(tmp):
    from tinynet_zoo.shrinking.run import data_resolution

    images(tmp / "d", {"a": 3, "b": 3}, size=48)
    bomb(tmp / "d" / "a" / "huge.png")
    got = data_resolution(tmp / "d")
    return ("OK", f"{got} px") if got == 48 else ("WRONG", f"{got} px")


@case("images", "truncated PNG in a training folder is skipped with a warning", expect="result")
def _(tmp):
    from tinynet_zoo.training.data import scan_folder

    images(tmp / "d", {"a": 3, "b": 3})
    good = (tmp / "d" / "a" / "0.png").read_bytes()
    (tmp / "d" / "a" / "cut.png").write_bytes(good[: len(good) // 2])
    splits, messages = warned(lambda: scan_folder(tmp / "d"))
    return ("OK", messages[0][:150]) if len(splits.skipped) == 1 and messages else ("WRONG", str(splits.skipped))


@case("images", "text file named .jpg in a calibration folder is skipped", expect="result")
def _(tmp):
    from tinynet_zoo.calibration import batches

    images(tmp / "c", {"x": 3})
    (tmp / "c" / "x" / "notes.jpg").write_text("not an image")
    found, messages = warned(lambda: batches(tmp / "c", 32, minimum=1))
    count = sum(len(x) for x, _ in found)
    return ("OK", f"{count} images") if count == 3 else ("WRONG", f"{count} images")


@case("images", "16-bit PNG in a calibration folder is not saturated", expect="result")
def _(tmp):
    import numpy as np
    from PIL import Image
    from tinynet_zoo.calibration import batches

    (tmp / "c").mkdir()
    for i in range(3):
        Image.fromarray(np.full((32, 32), 20000 * i, np.uint16)).save(tmp / "c" / f"{i}.png")
    found = batches(tmp / "c", 32, minimum=1)
    means = sorted(round(float(x.mean()), 2) for x in found[0][0])
    return ("OK", str(means)) if len(set(means)) == 3 else ("WRONG", f"images look alike after opening: {means}")


def _predict(tmp: Path, image_path: Path) -> tuple[int, str, str]:
    folder = tmp / "model"
    import tinynet_zoo as tz
    tz.save_pretrained(tiny_model(), folder)
    return cli("predict", folder, image_path, "--top", "1")


@case("images", "predict: decompression bomb", expect="result")
def _(tmp):
    return judge_cli(_predict(tmp, bomb(tmp / "huge.png")), ("huge.png", "too large"))


@case("images", "predict: truncated PNG", expect="result")
def _(tmp):
    images(tmp / "d", {"a": 1})
    good = (tmp / "d" / "a" / "0.png").read_bytes()
    (tmp / "cut.png").write_bytes(good[: len(good) // 2])
    return judge_cli(_predict(tmp, tmp / "cut.png"), ("cut.png", "truncated"))


@case("images", "predict: float TIFF outside [0, 1]", expect="result")
def _(tmp):
    import numpy as np
    from PIL import Image

    Image.fromarray(np.full((32, 32), 7.0, np.float32)).save(tmp / "f.tif")
    return judge_cli(_predict(tmp, tmp / "f.tif"), ("f.tif", "[0, 1]"))


# ---------------------------------------------------------------------------------------------------- finetune

@case("finetune", "val_fraction 0.99 leaves classes no training image", needles=("0.99", "3 images", "at most"))
def _(tmp):
    from tinynet_zoo.training.data import scan_folder

    scan_folder(images(tmp / "d", {"a": 3, "b": 3}), val_fraction=0.99)


@case("finetune", "finetune 10M with val_fraction 0.9 on 3 images a class", needles=("0.9", "at most"))
def _(tmp):
    import tinynet_zoo as tz

    tz.finetune("10M", images(tmp / "d", {"a": 3, "b": 3}), tmp / "run", pretrained=False, resolution=32, epochs=1,
                val_fraction=0.9, progress=False)


@case("finetune", "CLI --val-fraction 0.95 on 4 images a class", expect="result")
def _(tmp):
    data = images(tmp / "d", {"a": 4, "b": 4})
    return judge_cli(cli("finetune", "10M", "--data", data, "--scratch", "--resolution", "32", "--epochs", "1",
                         "--val-fraction", "0.95", "--out", tmp / "run"), ("--val-fraction", "4 images", "0.75"))


@case("finetune", "val_fraction 1.0", needles=("val_fraction", "1.0"))
def _(tmp):
    from tinynet_zoo.training.data import scan_folder

    scan_folder(images(tmp / "d", {"a": 3, "b": 3}), val_fraction=1.0)


@case("finetune", "val_fraction 0", needles=("val_fraction", "(0, 1)"))
def _(tmp):
    from tinynet_zoo.training.data import scan_folder

    scan_folder(images(tmp / "d", {"a": 3, "b": 3}), val_fraction=0)


@case("finetune", "val_fraction NaN", needles=("val_fraction", "nan"))
def _(tmp):
    from tinynet_zoo.training.data import scan_folder

    scan_folder(images(tmp / "d", {"a": 3, "b": 3}), val_fraction=float("nan"))


@case("finetune", "val_fraction 0.001 still holds one image of each class out", expect="result")
def _(tmp):
    from tinynet_zoo.training.data import scan_folder

    splits = scan_folder(images(tmp / "d", {"a": 5, "b": 5}), val_fraction=0.001)
    return ("OK", f"{len(splits.train)}/{len(splits.val)}") if (len(splits.train), len(splits.val)) == (8, 2) else \
        ("WRONG", f"train {len(splits.train)}, val {len(splits.val)}")


@case("finetune", "every class has a single image (nothing to validate on)", needles=("single image", "2"))
def _(tmp):
    from tinynet_zoo.training.data import scan_folder

    scan_folder(images(tmp / "d", {"a": 1, "b": 1}))


@case("finetune", "one class only", needles=("single class", "two"))
def _(tmp):
    from tinynet_zoo.training.data import scan_folder

    scan_folder(images(tmp / "d", {"a": 4}))


@case("finetune", "an empty class folder", needles=("no images", "empty"))
def _(tmp):
    from tinynet_zoo.training.data import scan_folder

    images(tmp / "d", {"a": 3, "b": 3})
    (tmp / "d" / "empty").mkdir()
    scan_folder(tmp / "d")


@case("finetune", "a class of corrupt images only", needles=("no readable images", "bad"))
def _(tmp):
    from tinynet_zoo.training.data import scan_folder

    images(tmp / "d", {"a": 3, "b": 3})
    (tmp / "d" / "bad").mkdir()
    (tmp / "d" / "bad" / "x.png").write_bytes(b"\x89PNG broken")
    warned(lambda: scan_folder(tmp / "d"))


@case("finetune", "a class of decompression bombs only", needles=("no readable images", "bombs"))
def _(tmp):
    from tinynet_zoo.training.data import scan_folder

    images(tmp / "d", {"a": 3})
    (tmp / "d" / "bombs").mkdir()
    bomb(tmp / "d" / "bombs" / "huge.png")
    warned(lambda: scan_folder(tmp / "d"))


# -------------------------------------------------------------------------------------------------- recalibrate

def _recal(data, **kwargs):
    import tinynet_zoo as tz

    return tz.recalibrate_bn(kwargs.pop("model", None) or tiny_model(), data, **{"min_images": 10, **kwargs})


def _batch(n: int = 40, classes: int = 2):
    import torch

    torch.manual_seed(0)
    return torch.randn(n, 3, 32, 32), torch.arange(n) % classes


@case("recalibrate", "one batch: held-out images are not the ones fitted on", expect="result")
def _(tmp):
    import torch

    x, y = _batch(40)
    x = x + torch.arange(40).view(40, 1, 1, 1) * 100  # each image's mean names it
    model, seen = tiny_model(), {"train": set(), "eval": set()}
    model.conv_stem.register_forward_hook(
        lambda m, inputs, out: seen["train" if m.training else "eval"].update(
            int(round(float(v) / 100)) for v in inputs[0].mean((1, 2, 3))))
    _recal([(x, y)], model=model)
    both = seen["train"] & seen["eval"]
    return ("OK", f"{len(seen['eval'])} held out, {len(seen['train'])} fitted") if seen["train"] and not both else \
        ("WRONG", f"{len(both)} image(s) both fitted on and scored")


@case("recalibrate", "NaN in a calibration batch", needles=("nan", "finite"))
def _(tmp):
    x, y = _batch()
    x[0, 0, 0, 0] = float("nan")
    _recal([(x, y)])


@case("recalibrate", "infinity in a calibration batch", needles=("infinite", "finite"))
def _(tmp):
    x, y = _batch()
    x[3] = float("inf")
    _recal([(x, y)])


@case("recalibrate", "NaN in inheritance calibration batches", needles=("nan",))
def _(tmp):
    import torch
    import tinynet_zoo as tz

    x = torch.randn(40, 3, 32, 32)
    x[1] = float("nan")
    tz.create(tz.Twist(0.5, 0.5, 0.5, 32, base="efficientnet_lite0", rules="lite"), pretrained="inherit",
              inherit_from=teacher_folder(tmp), calibration=[x])


@case("recalibrate", "one-channel images for an RGB model", needles=("1-channel", "3"))
def _(tmp):
    x, y = _batch()
    _recal([(x[:, :1], y)])


@case("recalibrate", "uint8 images", needles=("float", "uint8"))
def _(tmp):
    x, y = _batch()
    _recal([((x * 50).clamp(0, 255).to(__import__("torch").uint8), y)])


@case("recalibrate", "a single image tensor (3-d) per item", needles=("(N, C, H, W)", "3"))
def _(tmp):
    x, y = _batch()
    _recal([(img, label) for img, label in zip(x, y)])


@case("recalibrate", "labels beyond the model's classes", needles=("labels", "[0, 1]", "5"))
def _(tmp):
    x, y = _batch()
    _recal([(x, y + 5)])


@case("recalibrate", "float labels", needles=("labels", "integer", "float"))
def _(tmp):
    x, y = _batch()
    _recal([(x, y.float())])


@case("recalibrate", "labels of the wrong length", needles=("labels", "(40,)"))
def _(tmp):
    x, y = _batch()
    _recal([(x, y[:10])])


@case("recalibrate", "batches of different sizes of image", needles=("same", "(3, 32, 32)"))
def _(tmp):
    import torch

    x, y = _batch()
    _recal([(x, y), (torch.randn(8, 3, 48, 48), y[:8])])


@case("recalibrate", "model given as a name", needles=("model", "torch module", "str"))
def _(tmp):
    import tinynet_zoo as tz

    tz.recalibrate_bn("tinynet_e", [_batch()])


@case("recalibrate", "reference given as a path string", needles=("reference", "torch module"))
def _(tmp):
    _recal([_batch()], reference=str(tmp))


@case("recalibrate", "reference with another class count", needles=("reference", "5 classes", "2"))
def _(tmp):
    _recal([_batch()[0]], reference=tiny_model(5))


@case("recalibrate", "a model without batch norm", needles=("batch-norm",))
def _(tmp):
    import torch

    _recal([_batch()], model=torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten()))


@case("recalibrate", "min_images 0", needles=("min_images", "0"))
def _(tmp):
    _recal([_batch()], min_images=0)


@case("recalibrate", "min_images as text", needles=("min_images", "'500'"))
def _(tmp):
    _recal([_batch()], min_images="500")


@case("recalibrate", "data is a number", needles=("folder", "5"))
def _(tmp):
    _recal(5)


@case("recalibrate", "data folder missing", needles=("does not exist", "nowhere"))
def _(tmp):
    _recal(tmp / "nowhere", reference=tiny_model())


@case("recalibrate", "empty list of batches", needles=("0 readable", "at least"))
def _(tmp):
    _recal([], reference=tiny_model())


# ------------------------------------------------------------------------------------------------------- shrink

@case("shrink", "teacher folder fine-tuned on other labels (same count)", expect="result",
      needles=("other classes", "'cat'"))
def _(tmp):
    return shrink(tmp, teacher=teacher_folder(tmp, 2, ["cat", "dog"]))


@case("shrink", "teacher folder with the data's class count and no label names", expect="result",
      needles=("no label names", "a, b"))
def _(tmp):
    return shrink(tmp, teacher=teacher_folder(tmp, 2, None))


@case("shrink", "budget 4G: above the range at 32 px", expect="result", needles=("4G", "range"))
def _(tmp):
    return shrink(tmp, budget="4G")


@case("shrink", "budget 1M: below the range at 32 px", expect="result", needles=("1M", "32"))
def _(tmp):
    return shrink(tmp, budget="1M")


@case("shrink", "budget larger than the teacher at 32 px", expect="result", needles=("40M", "teacher"))
def _(tmp):
    return shrink(tmp, budget="40M")


@case("shrink", "budget 'lots'", expect="result", needles=("lots",))
def _(tmp):
    return shrink(tmp, budget="lots")


@case("shrink", "latency -3ms", expect="result", needles=("-3",))
def _(tmp):
    return shrink(tmp, budget=None, latency="-3ms")


@case("shrink", "latency 'fast'", expect="result", needles=("fast", "ms"))
def _(tmp):
    return shrink(tmp, budget=None, latency="fast")


@case("shrink", "budget and latency both", expect="result", needles=("one",))
def _(tmp):
    return shrink(tmp, latency="3ms")


@case("shrink", "backend typo 'onnxrutime'", expect="result", needles=("onnxrutime", "onnxruntime"))
def _(tmp):
    return shrink(tmp, backend="onnxrutime")


@case("shrink", "backend not installed", expect="result", needles=("pip install",))
def _(tmp):
    from tinynet_zoo.deploy.backends import BACKENDS, is_installed

    missing = [b for b in BACKENDS if not is_installed(b)]
    return shrink(tmp, backend=missing[0]) if missing else ("OK", "every backend is installed here")


@case("shrink", "12 images: fewer than calibration needs", expect="result", needles=("12", "32"))
def _(tmp):
    return shrink(tmp, data=images(tmp / "data", {"a": 6, "b": 6}))


@case("shrink", "epochs 0", expect="result", needles=("epochs", "0"))
def _(tmp):
    return shrink(tmp, epochs=0)


@case("shrink", "val_fraction 0.99", expect="result", needles=("0.99", "at most"))
def _(tmp):
    return shrink(tmp, val_fraction=0.99)


@case("shrink", "distill_weight 2", expect="result", needles=("distill_weight", "2"))
def _(tmp):
    return shrink(tmp, distill_weight=2)


@case("shrink", "one class only", expect="result", needles=("single class",))
def _(tmp):
    return shrink(tmp, data=images(tmp / "data", {"a": 40}))


def _recorded(tmp: Path, text: str) -> Path:
    (tmp / "out").mkdir(parents=True, exist_ok=True)
    (tmp / "out" / "shrink.json").write_text(text)
    return tmp / "out" / "shrink.json"


def _kept_while(kept: Kept, func):
    """func's verdict, or LOST when a user's file changed (whether func raised or not)."""
    try:
        verdict = func()
    finally:
        if kept.lost():
            return "LOST", f"changed {kept.lost()}"  # noqa: B012 - the loss outranks the refusal
    return verdict


def _refused_and_kept(tmp: Path, text: str, needles: tuple[str, ...]):
    return _kept_while(Kept(_recorded(tmp, text)), lambda: shrink(tmp))


@case("shrink", "truncated shrink.json", expect="result", needles=("shrink.json", "overwrite"))
def _(tmp):
    return _refused_and_kept(tmp, '{"settings": {"budget": "5M"', ())


@case("shrink", "shrink.json that is a JSON list", expect="result", needles=("shrink.json", "overwrite"))
def _(tmp):
    return _refused_and_kept(tmp, "[1, 2, 3]", ())


@case("shrink", "shrink.json with steps of the wrong type", expect="result", needles=("shrink.json", "steps"))
def _(tmp):
    return _refused_and_kept(tmp, '{"settings": {}, "steps": 3}', ())


@case("shrink", "shrink.json of binary garbage", expect="result", needles=("shrink.json",))
def _(tmp):
    (tmp / "out").mkdir()
    (tmp / "out" / "shrink.json").write_bytes(b"\xff\xfe\x00garbage")
    return _kept_while(Kept(tmp / "out" / "shrink.json"), lambda: shrink(tmp))


def _settings(tmp: Path, data: Path, **changes) -> str:
    settings = {"data": str(data.resolve()), "budget": "5M", "latency": None, "teacher": "efficientnet_lite0",
                "epochs": 1, "resolution": 32, "val_fraction": 0.2, "seed": 0, "compare": True, "backend": "auto",
                "distill_weight": 0.3, **changes}
    return json.dumps({"settings": settings, "steps": {}})


@case("shrink", "CLI rerun with another --budget names the option and --overwrite", expect="result")
def _(tmp):
    data = images(tmp / "data", {"a": 20, "b": 20})
    path = _recorded(tmp, _settings(tmp, data, budget="6M"))
    kept = Kept(path)
    got = judge_cli(cli("shrink", "--data", data, "--out", tmp / "out", "--budget", "5M", "--epochs", "1",
                        "--resolution", "32"), ("--budget 6M", "--overwrite"))
    return ("LOST", str(kept.lost())) if kept.lost() else got


@case("shrink", "rerun with another seed names the option", expect="result", needles=("seed=3", "overwrite"))
def _(tmp):
    import tinynet_zoo as tz

    data = images(tmp / "data", {"a": 20, "b": 20})
    _recorded(tmp, _settings(tmp, data, seed=3))
    return no_training(lambda: tz.shrink(data, tmp / "out", budget="5M", epochs=1, resolution=32))


@case("shrink", "CLI: --out is a file", expect="result")
def _(tmp):
    data = images(tmp / "data", {"a": 20, "b": 20})
    (tmp / "out.txt").write_text("mine")
    kept = Kept(tmp / "out.txt")
    got = judge_cli(cli("shrink", "--data", data, "--out", tmp / "out.txt", "--budget", "5M"), ("out.txt", "file"))
    return ("LOST", str(kept.lost())) if kept.lost() else got


@case("shrink", "CLI: teacher of other labels says --teacher", expect="result")
def _(tmp):
    data = images(tmp / "data", {"a": 20, "b": 20})
    folder = teacher_folder(tmp, 2, ["x", "y"])
    return judge_cli(cli("shrink", "--data", data, "--out", tmp / "out", "--budget", "5M", "--teacher", folder,
                         "--epochs", "1", "--resolution", "32"), ("other classes", "'x'"))
