"""onnxruntime: runs ONNX files (.onnx); writes them with torch.onnx (dynamo exporter), verified on onnxruntime
(or OpenVINO where onnxruntime is missing)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ...errors import BackendNotInstalledError, TinyNetZooError
from ...files import temporary_beside
from ...system import is_installed as package_installed
from ..fold import fold_batchnorm
from .base import EngineSpec, FormatSpec, PlainRecipe, digest, is_installed, reading, register, require
from .builds import ModuleBuilds
from .verify import place, verify

if TYPE_CHECKING:
    import numpy as np
    import torch.nn as nn


class OnnxRuntimeEngine:
    """onnxruntime CPU session: all graph optimisations, `threads` intra-op threads, sequential execution."""

    name = "onnxruntime"

    def __init__(self, path: "str | Path", threads: "int | None") -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3  # initializer clean-up notices are not the user's concern
        with reading(path):
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self.input_name = self.session.get_inputs()[0].name

    def input_shape(self) -> tuple:
        """(batch or None, channels, height, width)."""
        return tuple(d if isinstance(d, int) else None for d in self.session.get_inputs()[0].shape)

    def run(self, x: "np.ndarray") -> "np.ndarray":
        """Logits for one batch."""
        return self.session.run(None, {self.input_name: x})[0]


def require_exporter() -> None:
    """Raise BackendNotInstalledError unless torch's ONNX exporter can run (it needs onnx and onnxscript)."""
    missing = [pkg for pkg in ("onnx", "onnxscript") if not package_installed(pkg)]
    if missing:
        raise BackendNotInstalledError(f"exporting to ONNX needs {' and '.join(map(repr, missing))}, not installed: "
                                       "pip install 'tinynet-zoo[deploy]'")


def onnx_verifier() -> str:
    """The engine that verifies an ONNX export: onnxruntime, else OpenVINO."""
    return "onnxruntime" if is_installed("onnxruntime") else "openvino"


def _need() -> None:
    require(onnx_verifier())
    require_exporter()


def export_onnx(model: "nn.Module", resolution: int, batch: "int | None", target: Path, opset: "int | None") -> None:
    """torch.onnx's dynamo exporter: input 'input', output 'logits', a dynamic batch axis where batch is None."""
    import torch

    example = torch.randn(2 if batch is None else batch, 3, resolution, resolution)
    dynamic = ({0: torch.export.Dim("batch", min=1)},) if batch is None else None
    program = torch.onnx.export(model, (example,), dynamo=True, verbose=False, input_names=["input"],
                                output_names=["logits"], dynamic_shapes=dynamic, opset_version=opset,
                                external_data=False)
    program.save(str(target))


def write_onnx(model: "nn.Module", path: Path, resolution: int, batch: "int | None", opset: "int | None",
               tolerance: float, overwrite: bool) -> dict[str, Any]:
    """The BatchNorm-folded module as ONNX, verified, then renamed onto `path`."""
    import onnx

    verifier = onnx_verifier()
    with temporary_beside(path, ".onnx") as tmp:
        export_onnx(fold_batchnorm(model), resolution, batch, tmp, opset)
        graph = onnx.load(str(tmp))
        used = next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
        if opset is not None and used != opset:
            raise TinyNetZooError(f"torch.onnx wrote opset {used}, not the opset {opset} asked for; nothing was "
                                  "written")
        batchnorm = sum(node.op_type == "BatchNormalization" for node in graph.graph.node)
        fields = verify(model, tmp, verifier, resolution, batch, tolerance)
        place([(tmp, path)], overwrite)
    return {**fields, "opset": used, "batchnorm_nodes": batchnorm}


def graph_key(path: Path) -> str:
    """An ONNX graph's operators, weight shapes and input type (weight values do not count)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    if not graph.input:
        raise ValueError("the graph has no input")
    return digest([[n.op_type for n in graph.node], sorted(list(t.dims) for t in graph.initializer),
                   str(graph.input[0].type)])


def plain(builds: ModuleBuilds, batch: int) -> Callable[[Any], Any]:
    """torch.onnx.export defaults + InferenceSession(path)."""
    import onnxruntime as ort
    import torch

    def export() -> Path:
        path = builds.folder / f"plain_b{batch}.onnx"
        example = (torch.zeros(batch, 3, builds.resolution, builds.resolution),)
        torch.onnx.export(builds.module, example, str(path), verbose=False)
        return path
    session = ort.InferenceSession(str(builds.once(("onnx-defaults", batch), export)))
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


register(EngineSpec("onnxruntime", "onnxruntime", "deploy", True, (".onnx",), OnnxRuntimeEngine),
         FormatSpec("onnx", ".onnx", "an ONNX model (tz.export or torch.onnx.export)", write_onnx, _need, opset=True,
                    graph_key=graph_key, engine="onnxruntime"),
         PlainRecipe("onnxruntime-plain", plain, "onnxruntime"))
