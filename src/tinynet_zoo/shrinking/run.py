"""`shrink`: a small network for your images. Fine-tune (or take) a teacher, choose the student's twist by the tiny
formula at the data's resolution, inherit the teacher's most important channels, distil, export, and compare the
student with the same twist trained from scratch and from plain (leading-slice) inheritance."""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from ..images import image_size, list_images
from ..calibration import MIN_CALIBRATION_IMAGES
from ..checks import boolean, integer, number
from ..core.formula import for_flops
from ..deploy.latency import for_latency
from ..core.twist import Twist, check_resolution
from ..deploy.backends import require
from ..deploy.int8_gate import MAX_DROP, MIN_AGREEMENT
from ..deploy.quantize import check_int8
from ..errors import BudgetError, DataError, InvalidArgumentError
from ..factory import create, resolve
from ..files import ensure_writable_dir
from ..training.checkpoint import generations
from ..training.data import datasets, scan_folder
from ..training.finetune import finetune
from ..training.loop import evaluate
from ..weights.folder import save_pretrained
from ..weights.inherit import check_teacher, inherit, leading_importance
from ..weights.model_config import ModelConfig, record
from .report import ShrinkReport, write_report
from .state import ShrinkState


def data_resolution(data: "str | Path", sample: int = 64) -> int:
    """The training images' typical size: the median shorter side of up to `sample` images, even, in range."""
    sides = []
    for path in list_images(data)[:sample]:
        try:
            sides.append(min(image_size(path)))
        except DataError:  # left out here; the data scan counts it in its warning
            continue
    if not sides:
        raise InvalidArgumentError(f"no readable images in {data}")
    return check_resolution(max(32, min(1024, 2 * round(statistics.median(sides) / 2))), "data resolution")


# how students (inherited, plain or scratch alike) train: a cut network must repair itself, so every layer learns
# at the full rate with batch-norm statistics trained (the gentle pretrained-weights defaults left an inherited
# digits student at 26%, these reach 84%); small batches give small folders enough steps; no augmentation lets
# the teacher's outputs be cached
STUDENT_TRAINING = {"lr": 3e-3, "backbone_lr_scale": 1.0, "layer_decay": None, "batchnorm": "train",
                    "augment": "none"}
SMALL_FOLDER_IMAGES, SMALL_FOLDER_BATCH = 5000, 16
# the student's share of distillation in its loss: on the digits benchmark (teacher 91.0%), 0 / 0.3 / 0.7 gave the
# inherited student 92.5% / 90.0% / 84.0%: a teacher no better than the labels mostly teaches its mistakes
STUDENT_DISTILL_WEIGHT = 0.3


def _student_training(splits: Any, train: dict[str, Any]) -> dict[str, Any]:
    """The students' training settings for this folder's split."""
    images = len(splits.train)
    return {**train, **STUDENT_TRAINING, **({"batch_size": SMALL_FOLDER_BATCH} if images < SMALL_FOLDER_IMAGES else {})}


def _train(spec: Any, data: Path, run: Path, restart: bool = False, **kwargs: Any) -> dict[str, Any]:
    """Fine-tune into `run` (resuming its own checkpoints after an interruption, unless `restart`); the step's
    record."""
    resume = run if generations(run) and not restart else None
    result = finetune(spec, data, run, resume=resume, overwrite=resume is None, progress=False, **kwargs)
    return {"folder": str(run / "best"), "top1": result.best_top1, "seconds": round(result.wall_s, 1),
            "epochs": len(result.history)}


def _top1(folder: str, splits: Any) -> float:
    """Validation top-1 of a model folder on the data's held-out split."""
    import torch

    model = create(Path(folder))
    _, val = datasets(splits, model)
    return evaluate(model, torch.utils.data.DataLoader(val, batch_size=64))["top1"]


def _teacher(spec: Any, ready: bool, data: Path, splits: Any, out: Path, resolution: int,
             train: dict[str, Any]) -> dict[str, Any]:
    """A teacher fine-tuned on the data: a folder that already is one (`ready`), or `spec` fine-tuned now."""
    if ready:
        location = resolve(spec).location
        return {"folder": str(location), "top1": _top1(location, splits), "seconds": 0.0, "epochs": 0}
    return _train(spec, data, out / "teacher", resolution=resolution, **train)


def teacher_ready(spec: Any, classes: tuple[str, ...]) -> tuple[Twist, bool]:
    """The teacher's twist, and whether it already is fine-tuned on these classes: a model folder whose label
    names are the data's class names, in order (a folder of another class count is fine-tuned on the data)."""
    target = resolve(spec)
    if not target.brings_weights:
        if target.twist is None:
            raise InvalidArgumentError(f"teacher {spec!r} is not a model name, budget or model folder")
        return target.twist, False
    model = create(target)
    config = ModelConfig.of(model)
    twist, labels = config.twist, config.label_names
    if model.num_classes != len(classes):
        return twist, False
    if labels is None:
        raise InvalidArgumentError(
            f"teacher {target.label} has {model.num_classes} classes like the data but records no label names, so "
            f"shrink cannot tell whether it was fine-tuned on these classes ({', '.join(classes)}); save it with "
            "tz.save_pretrained after fine-tuning on this folder (which records them), or give a model name to "
            "fine-tune a teacher")
    if list(labels) != list(classes):
        differ = [f"{a!r} vs {b!r}" for a, b in zip(labels, classes) if a != b][:3]
        raise InvalidArgumentError(
            f"teacher {target.label} was fine-tuned on other classes than the data's (label vs class: "
            f"{', '.join(differ)}); give a teacher fine-tuned on this folder, or a model name to fine-tune one")
    return twist, True


def parse_latency(latency: Any) -> float:
    """Milliseconds from 3, 3.0, '3', '3ms' or '0.003s'."""
    text = str(latency).strip().lower()
    scale = 1e3 if text.endswith("s") and not text.endswith("ms") else 1.0
    try:
        value = float(text.removesuffix("ms").removesuffix("s")) * scale
    except ValueError:
        raise BudgetError(f"cannot parse latency {latency!r}; use milliseconds such as 3, '3ms' or '0.003s'") from None
    return number("latency (ms)", value, 0, low_open=True)


def _twist(teacher: Twist, budget: Any, latency: Any, resolution: int, backend: str) -> Twist:
    """The student's twist: the tiny formula at the data's resolution on the teacher's base, for a MAC budget or
    (measured on this machine) a batch-1 latency."""
    teacher_macs = Twist.from_dict({**teacher.to_dict(), "resolution": resolution}).macs
    if latency is not None:
        student = for_latency(parse_latency(latency), backend=backend, base=teacher.base, resolution=resolution,
                              max_macs=teacher_macs).twist
    else:
        student = for_flops(budget, base=teacher.base, resolution=resolution)
    if student.macs >= teacher_macs:
        raise BudgetError(f"budget {budget or latency!r} gives a student of {student.macs:,} MACs, not smaller than "
                          f"the teacher ({teacher_macs:,} MACs at {resolution} px); choose a smaller budget")
    return student


def _checked(data: Path, budget: Any, latency: Any, epochs: Any, seed: Any, compare: Any, backend: Any,
             distill_weight: Any) -> float:
    """Check the options that need no data (the teacher's share of the loss returned), before any work."""
    if (budget is None) == (latency is None):
        raise InvalidArgumentError("give the student's budget: MACs such as '8M', or a latency such as '3ms' (one)")
    if latency is not None:
        parse_latency(latency)
    if epochs is not None:
        integer("epochs", epochs, 1)
    integer("seed", seed, 0)
    boolean("compare", compare)
    if not isinstance(backend, str) or backend != "auto":
        require(backend)  # an unknown name suggests close ones; a missing package names its extra
    if not data.is_dir():
        raise DataError(f"data folder {data} does not exist or is not a folder")
    return STUDENT_DISTILL_WEIGHT if distill_weight is None else number("distill_weight", distill_weight, 0, 1)


def _calibration_size(splits: Any) -> None:
    """Inheritance ranks channels on the data's images: refuse a folder with too few before any work."""
    count = len(splits.train) + len(splits.val)
    if count < MIN_CALIBRATION_IMAGES:
        raise DataError(f"{splits.root} has {count} readable image(s); shrink ranks the teacher's channels on the "
                        f"data's images and needs at least {MIN_CALIBRATION_IMAGES}: add images")


def _init(twist: Twist, teacher_folder: str, data: Path, folder: Path, plain: bool) -> dict[str, Any]:
    """The student's starting weights as a model folder: cut from the teacher by importance (measured on the
    data's images), or by the leading slice (plain inheritance)."""
    tic = time.perf_counter()
    if plain:
        teacher = create(Path(teacher_folder))
        teacher_config = ModelConfig.of(teacher)
        teacher_arch = teacher_config.twist.arch
        student = create(twist, num_classes=teacher.num_classes)
        student.load_state_dict(inherit(teacher.state_dict(), teacher_arch, student.state_dict(), twist.arch,
                                        leading_importance(teacher_arch)))
        record(student, label_names=teacher_config.label_names)
    else:
        student = create(twist, pretrained="inherit", inherit_from=Path(teacher_folder), calibration=data)
    save_pretrained(student, folder, overwrite=True)
    return {"folder": str(folder), "seconds": round(time.perf_counter() - tic, 1)}


def shrink(data: "str | Path", out: "str | Path", budget: Any = None, latency: Any = None,
           teacher: Any = "efficientnet_lite0",
           epochs: "int | None" = None, resolution: "int | None" = None, base: "str | None" = None,
           val_fraction: float = 0.2, seed: int = 0, compare: bool = True, backend: str = "auto",
           distill_weight: "float | None" = None, int8: bool = False, overwrite: bool = False) -> ShrinkReport:
    """Shrink `teacher` to a student of `budget` MACs (or `latency` ms) for the images in `data`; resumable per
    step in `out`.

    Steps: teacher (fine-tuned on the data unless it already is), student twist (tiny formula at the data's
    resolution), inherited student (channels ranked on the data), distilled student, and with `compare` the same
    twist from scratch and from plain inheritance for the same epochs; then export and a report card.
    Every option is checked before the first step. A folder holding a run of other settings is refused unless
    `overwrite`, which starts that run again (each step replaces only its own files).
    backend: the engine that times the models ('auto' races every installed one; e.g. 'onnxruntime' is quicker).
    distill_weight: the teacher's share of the student's loss (default 0.3; 0: labels only; see docs/shrink.md).
    int8: also write the student as int8 ONNX calibrated on the training split of `data` and checked on its
    validation split, kept only if its top-1 drops at most 1 point (a refusal is recorded in the report, not raised).
    """
    data = Path(data)
    distill_weight = _checked(data, budget, latency, epochs, seed, compare, backend, distill_weight)
    boolean("overwrite", overwrite)
    if boolean("int8", int8):
        check_int8("onnx", "fp32", data, MAX_DROP, MIN_AGREEMENT)  # onnxruntime and the ONNX exporter, now
    resolution = check_resolution(resolution) if resolution is not None else data_resolution(data)
    splits = scan_folder(data, val_fraction=val_fraction, seed=seed)  # the one split every step evaluates on
    _calibration_size(splits)
    teacher_twist, ready = teacher_ready(teacher, splits.classes)
    if base is not None and base != teacher_twist.base:
        check_teacher(teacher_twist, Twist(1.0, 1.0, 1.0, resolution, base))
    if latency is None:
        _twist(teacher_twist, budget, None, resolution, backend)  # the budget's range at this resolution, now
    settings = {"data": str(data.resolve()), "budget": budget, "latency": latency, "teacher": str(teacher),
                "epochs": epochs, "resolution": resolution, "val_fraction": val_fraction, "seed": seed,
                "compare": compare, "backend": backend, "distill_weight": distill_weight, "int8": int8}
    out = ensure_writable_dir(out, "shrink folder (--out)")
    state = ShrinkState(out, settings, overwrite=overwrite)
    train = {"epochs": epochs, "val_fraction": val_fraction, "seed": seed}
    twist = Twist.from_dict(state.step("twist", lambda: _twist(teacher_twist, budget, latency, resolution,
                                                               backend).to_dict()))
    found = state.step("teacher", lambda: _teacher(teacher, ready, data, splits, out, resolution,
                                                   state.fresh("teacher", train)))
    state.step("student_init", lambda: _init(twist, found["folder"], data, out / "student-init", plain=False))
    students = _student_training(splits, train)
    distil = {"teacher": Path(found["folder"]), "distill_weight": distill_weight} if distill_weight > 0 else {}
    state.step("student", lambda: _train(out / "student-init", data, out / "student", **distil,
                                         **state.fresh("student", students)))
    if compare:
        state.step("plain_init", lambda: _init(twist, found["folder"], data, out / "plain-init", plain=True))
        state.step("plain", lambda: _train(out / "plain-init", data, out / "plain", **state.fresh("plain", students)))
        state.step("scratch", lambda: _train(twist, data, out / "scratch", pretrained=False,
                                             **state.fresh("scratch", students)))
    return write_report(out, state, twist, teacher_twist, resolution, backend, int8_split=splits if int8 else None)
