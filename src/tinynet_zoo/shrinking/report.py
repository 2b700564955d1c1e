"""The shrink report card: top-1, MACs, params and CPU latency of the teacher, the distilled student and the same
student from scratch and from plain inheritance, as report.json and report.png (with the student exported)."""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..core.flops import count_macs, count_params
from ..core.twist import Twist
from ..deploy.export import export
from ..deploy.runtime import runtime
from ..deploy.timing import time_calls
from ..errors import AccuracyLossError, DataError, ExtraNotInstalledError, QuantizationError
from ..factory import create
from ..files import write_atomic, write_json_atomic
from ..system import pyplot
from .state import ShrinkState

REPORT_NAME, PLOT_NAME, EXPORT_NAME, INT8_NAME = "report.json", "report.png", "student.onnx", "student.int8.onnx"
LATENCY_WARMUP, LATENCY_RUNS = 10, 50


@dataclass
class ShrinkReport:
    """What `shrink` produced: each model's top-1 (percent), MACs and params (with the data's classifier), batch-1
    CPU latency, and its files."""

    teacher_top1: float
    student_top1: float
    scratch_top1: "float | None"
    plain_top1: "float | None"
    teacher_macs: int
    student_macs: int
    teacher_params: int
    student_params: int
    teacher_latency_ms: "float | None"
    student_latency_ms: "float | None"
    resolution: int
    twist: dict[str, Any]
    step_seconds: dict[str, float]
    wall_s: float  # the steps' seconds added up (over every resumed invocation)
    backend: str = ""
    files: dict[str, str] = field(default_factory=dict)
    int8: "dict[str, Any] | None" = None  # shrink(int8=True): the int8 file and its top-1, or why none was written

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return asdict(self)

    def text(self) -> str:
        """A short table."""
        student = (self.student_macs, self.student_params, self.student_latency_ms)
        rows = [("teacher", self.teacher_top1, (self.teacher_macs, self.teacher_params, self.teacher_latency_ms)),
                ("student (inherited + distilled)", self.student_top1, student),
                ("same student, plain inheritance", self.plain_top1, student),
                ("same student, from scratch", self.scratch_top1, student)]
        lines = [f"| model | val top-1 | MACs | params | latency (batch 1, {self.backend or 'cpu'}) |",
                 "|---|---|---|---|---|"]
        for name, top1, (macs, params, ms) in rows:
            if top1 is not None:
                lines.append(f"| {name} | {top1:.1f}% | {macs / 1e6:.2f}M | {params / 1e6:.2f}M | "
                             f"{'-' if ms is None else f'{ms:.2f} ms'} |")
        return "\n".join(lines + _int8_lines(self.int8) +
                         [f"files: {', '.join(f'{k}: {v}' for k, v in self.files.items())}"])


def _int8_lines(int8: "dict[str, Any] | None") -> list[str]:
    """The int8 file's line of the report: its size and top-1 against float, or why it was not written."""
    if int8 is None:
        return []
    if not int8["written"]:
        return [f"int8: not written ({int8['reason']})"]
    return [f"int8: {int8['file']}, {int8['bytes'] / 1e6:.2f} MB (float {int8['float_bytes'] / 1e6:.2f} MB), top-1 "
            f"{int8['float_top1']:.1f}% float vs {int8['int8_top1']:.1f}% int8 on {int8['images']} held-out images"]


def _latency(spec: Any, resolution: int, backend: str) -> tuple[float, str]:
    """Median batch-1 milliseconds on `backend` ('auto': the fastest installed CPU engine), and the engine."""
    import numpy as np

    predict = runtime(spec, backend=backend)
    batch = np.zeros((1, 3, resolution, resolution), dtype=np.float32)
    return time_calls(lambda: predict(batch), LATENCY_WARMUP, LATENCY_RUNS).median_ms, predict.backend


def _deploy(out: Path, steps: dict[str, Any], student: Twist, resolution: int, backend: str,
            restart: bool = False) -> dict[str, Any]:
    """Export the student (verified ONNX; `restart` replaces the export of a run started again) and time it and the
    teacher on the same engine choice."""
    tic = time.perf_counter()
    path = out / EXPORT_NAME
    if restart or not path.is_file():
        export(Path(steps["student"]["folder"]), path, overwrite=restart)
    student_ms, engine = _latency(Path(steps["student"]["folder"]), student.resolution, backend)
    teacher_ms, _ = _latency(Path(steps["teacher"]["folder"]), resolution, engine)
    return {"onnx": str(path), "student_latency_ms": student_ms, "teacher_latency_ms": teacher_ms,
            "backend": engine, "seconds": round(time.perf_counter() - tic, 1)}


def _link(source: Path, target: Path) -> None:
    """`target` pointing at the image `source` (a copy where links cannot be made); kept if it already does."""
    if target.is_symlink() and target.resolve() == source.resolve():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        target.symlink_to(source.resolve())
    except OSError:
        shutil.copyfile(source, target)


def split_folder(splits: Any, folder: Path) -> Path:
    """train/ and val/ class folders in `folder` of links to the split's images: the int8 file calibrates on the
    shrink's training images and is checked on its validation images only."""
    for name, samples in (("train", splits.train), ("val", splits.val)):
        for index, (path, label) in enumerate(samples):
            _link(Path(path), folder / name / splits.classes[label] / f"{index:06d}{Path(path).suffix}")
    return folder


def _int8(out: Path, steps: dict[str, Any], splits: Any) -> dict[str, Any]:
    """The student as int8 ONNX calibrated on the shrink's training split and checked on its validation split
    (labelled by the classes), written only if its top-1 keeps within the export's rule; a refusal is recorded
    with its numbers instead of failing the run."""
    tic = time.perf_counter()
    path = out / INT8_NAME
    try:  # the file is this step's own: a run interrupted after writing it writes it again
        with tempfile.TemporaryDirectory(prefix="tinynet-zoo-int8-split.") as tmp:
            exported = export(Path(steps["student"]["folder"]), path, precision="int8",
                              calibration=split_folder(splits, Path(tmp)), overwrite=True)
    except (AccuracyLossError, QuantizationError, DataError) as exc:
        return {"written": False, "file": None, "reason": str(exc), "seconds": round(time.perf_counter() - tic, 1)}
    gate = {k: list(v) if isinstance(v, tuple) else v for k, v in (exported.int8 or {}).items() if k != "tries"}
    return {"written": True, "file": str(path), "bytes": exported.file_bytes,
            "float_bytes": (out / EXPORT_NAME).stat().st_size, **gate, "seconds": round(time.perf_counter() - tic, 1)}


def _plot(path: Path, report: ShrinkReport) -> "Path | None":
    try:
        plt = pyplot("the shrink report card")
    except ExtraNotInstalledError:
        return None
    names = ["teacher", "student", "plain inheritance", "scratch"]
    top1 = [report.teacher_top1, report.student_top1, report.plain_top1, report.scratch_top1]
    shown = [(n, t) for n, t in zip(names, top1) if t is not None]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.bar([n for n, _ in shown], [t for _, t in shown], color=["0.5", "tab:green", "tab:orange", "tab:red"][
        :len(shown)])
    left.set(ylabel="val top-1 (%)", title=f"top-1 at {report.resolution} px")
    left.tick_params(axis="x", labelsize=8)
    right.bar(["teacher", "student"], [report.teacher_macs / 1e6, report.student_macs / 1e6], color=["0.5",
                                                                                                   "tab:green"])
    right.set(ylabel="MACs (millions)", title="cost")
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return path


def write_report(out: Path, state: ShrinkState, student: Twist, teacher: Twist, resolution: int,
                 backend: str = "auto", int8_split: Any = None) -> ShrinkReport:
    """Export the student, measure latencies (a resumable step), write report.json and report.png; with
    `int8_split` (the data's Splits) also the int8 student calibrated on its training images and checked on its
    validation images (its own step)."""
    steps = state.data["steps"]
    deployed = state.step("deploy", lambda: _deploy(out, steps, student, resolution, backend,
                                                    **state.fresh("deploy", {})))
    int8 = None if int8_split is None else state.step("int8", lambda: _int8(out, steps, int8_split))
    teacher_at = Twist.from_dict({**teacher.to_dict(), "resolution": resolution})
    classes = create(Path(steps["student"]["folder"])).num_classes  # MACs and params with the data's head
    seconds = {name: step["seconds"] for name, step in steps.items() if isinstance(step, dict) and "seconds" in step}
    report = ShrinkReport(
        teacher_top1=steps["teacher"]["top1"], student_top1=steps["student"]["top1"],
        scratch_top1=steps.get("scratch", {}).get("top1"), plain_top1=steps.get("plain", {}).get("top1"),
        teacher_macs=count_macs(teacher_at.arch, resolution, classes),
        student_macs=count_macs(student.arch, student.resolution, classes),
        teacher_params=count_params(teacher_at.arch, classes), student_params=count_params(student.arch, classes),
        teacher_latency_ms=deployed["teacher_latency_ms"], student_latency_ms=deployed["student_latency_ms"],
        resolution=resolution, twist=student.to_dict(), step_seconds=seconds,
        wall_s=round(sum(seconds.values()), 1),
        backend=deployed["backend"], int8=int8,
        files={"teacher": steps["teacher"]["folder"], "student": steps["student"]["folder"],
               "onnx": deployed["onnx"], "report": str(out / REPORT_NAME)})
    if int8 is not None and int8["written"]:
        report.files["int8_onnx"] = int8["file"]
    plotted = _plot(out / PLOT_NAME, report)
    if plotted is not None:
        report.files["plot"] = str(plotted)
    write_json_atomic(out / REPORT_NAME, report.to_dict())
    return report
