"""OpenVINO: converted from the torch module (ov.convert_model), or read from a .onnx/.xml file; openvino-onnx
always goes through the verified ONNX export. Writes OpenVINO IR (.xml + .bin), fp32 or int8 (NNCF's post-training
quantization)."""
from __future__ import annotations

import io
import logging
import warnings
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ...errors import BackendNotInstalledError
from ...files import temporary_beside
from ...system import is_installed
from ..fold import fold_batchnorm
from .base import MAX_SHAPES, EngineSpec, FormatSpec, PlainRecipe, digest, reading, register, require
from .builds import ModuleBuilds
from .verify import place, verify

if TYPE_CHECKING:
    import numpy as np
    import torch
    import torch.nn as nn

# NNCF's post-training quantization as measured on a digits-fine-tuned EfficientNet-Lite0 (docs/deploy.md):
# the MIXED preset (symmetric int8 weights, asymmetric activations) and the fast bias correction
NNCF_PRESET, NNCF_FAST_BIAS_CORRECTION = "mixed", True


def openvino_model(module: "nn.Module", resolution: int, batch: "int | None") -> Any:
    """OpenVINO's PyTorch frontend on the BatchNorm-folded module (`ov.convert_model` with an example input)."""
    import openvino as ov
    import torch

    example = torch.zeros(batch or 1, 3, resolution, resolution)
    with warnings.catch_warnings():  # the frontend traces with torch.jit, whose deprecation notices are not ours
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return ov.convert_model(fold_batchnorm(module), example_input=example,
                                input=[batch or -1, 3, resolution, resolution])


def converted(builds: ModuleBuilds) -> Any:
    """The module as it is through OpenVINO's PyTorch frontend with its defaults (`ov.convert_model(module,
    example_input=x)`: batch and image size left dynamic), made once per builds; OpenVINO folds each BatchNorm
    into the conv before it when compiling."""
    import openvino as ov
    import torch

    def convert() -> Any:
        example = torch.zeros(1, 3, builds.resolution, builds.resolution)
        with warnings.catch_warnings():  # the frontend traces with torch.jit, whose deprecation notices are not ours
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            return ov.convert_model(builds.module, example_input=example)
    return builds.once(("openvino",), convert)


class OpenVinoEngine:
    """OpenVINO CPU: LATENCY hint, one stream, fp32 precision, a static-shape compiled model per batch size."""

    name = "openvino"

    def __init__(self, model: Any, threads: "int | None") -> None:
        import openvino as ov
        import openvino.properties as props
        import openvino.properties.hint as hints

        self.core, self.model = ov.Core(), model
        self.config: dict[Any, Any] = {hints.performance_mode: hints.PerformanceMode.LATENCY, props.num_streams: 1,
                                       hints.inference_precision: ov.Type.f32}
        if threads:
            self.config[props.inference_num_threads] = threads
        self.requests: dict[int, Any] = {}

    @classmethod
    def from_file(cls, path: "str | Path", threads: "int | None") -> "OpenVinoEngine":
        """Read an OpenVINO IR (.xml + .bin) or ONNX file; compiled once here so a bad file fails now."""
        import openvino as ov

        with reading(path):
            engine = cls(ov.Core().read_model(str(path)), threads)
            engine._request(engine.input_shape()[0] or 1)
        return engine

    @classmethod
    def from_module(cls, builds: ModuleBuilds, threads: "int | None") -> "OpenVinoEngine":
        """The torch module converted directly (no ONNX step; the conversion shared through `builds`), its input
        set to (any batch, 3, resolution, resolution)."""
        model = converted(builds).clone()
        model.reshape([-1, 3, builds.resolution, builds.resolution])
        return cls(model, threads)

    def input_shape(self) -> tuple:
        """(batch or None, channels, height, width)."""
        shape = self.model.input(0).get_partial_shape()
        return tuple(d.get_length() if d.is_static else None for d in shape)

    def _request(self, batch: int) -> Any:
        if batch not in self.requests:
            model = self.model.clone()
            model.reshape([batch, *self.input_shape()[1:]])
            if len(self.requests) >= MAX_SHAPES:
                self.requests.pop(next(iter(self.requests)))
            self.requests[batch] = self.core.compile_model(model, "CPU", self.config).create_infer_request()
        return self.requests[batch]

    def run(self, x: "np.ndarray") -> "np.ndarray":
        """Logits for one batch (a copy: the request's buffer is reused by the next call)."""
        return self._request(x.shape[0]).infer({0: x})[0].copy()


def write_openvino(model: "nn.Module", path: Path, resolution: int, batch: "int | None", variant: str,
                   tolerance: float, overwrite: bool) -> dict[str, Any]:
    """OpenVINO IR straight from the torch module (ov.convert_model), saved as path.xml + path.bin."""
    import openvino as ov

    converted = openvino_model(model, resolution, batch)
    batchnorm = sum("BatchNorm" in op.get_type_name() for op in converted.get_ops())
    with temporary_beside(path, ".xml") as tmp_xml:
        tmp_bin = tmp_xml.with_suffix(".bin")
        try:
            ov.save_model(converted, str(tmp_xml), compress_to_fp16=False)
            fields = verify(model, tmp_xml, "openvino", resolution, batch, tolerance)
            place([(tmp_bin, path.with_suffix(".bin")), (tmp_xml, path)], overwrite)
        finally:
            tmp_bin.unlink(missing_ok=True)
    return {**fields, "opset": None, "batchnorm_nodes": batchnorm}


def require_nncf() -> None:
    """Raise BackendNotInstalledError unless NNCF (OpenVINO's int8 quantizer) can be imported."""
    if not is_installed("nncf"):
        raise BackendNotInstalledError("int8 OpenVINO IR needs the 'nncf' package (OpenVINO's quantizer), which is "
                                       "not installed: pip install 'tinynet-zoo[deploy]'")


@contextmanager
def quiet_nncf() -> Iterator[Any]:
    """The nncf module with its log lines, progress bars and warnings (and those of the libraries it imports)
    silenced within the block (and no debug dumps written into the working folder); the user's logging.disable level,
    logger class and NNCF's log level are put back afterwards."""
    previous, logger_class = logging.root.manager.disable, logging.getLoggerClass()
    logging.disable(max(previous, logging.WARNING))
    try:
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its notices about the model's shapes are not the user's concern
            import nncf

            logging.setLoggerClass(logger_class)  # importing NNCF makes every later logger an NNCFLogger
            nncf_logger = logging.getLogger("nncf")
            level = nncf_logger.level
            nncf_logger.setLevel(logging.WARNING)  # at DEBUG, NNCF writes graph dumps into ./nncf_debug
            try:
                yield nncf
            finally:
                nncf_logger.setLevel(level)
    finally:
        logging.disable(previous)


def ignored_ops(converted: Any, float_modules: tuple[str, ...]) -> list[str]:
    """Names of the converted model's operations that come from `float_modules` (or their children): the PyTorch
    frontend names each `__module.<module path>/<aten op>/...`."""
    prefixes = tuple(f"__module.{name}{end}" for name in float_modules for end in ("/", "."))
    return [op.get_friendly_name() for op in converted.get_ops() if op.get_friendly_name().startswith(prefixes)]


def openvino_int8(converted: Any, target_xml: Path, calibration: "torch.Tensor",
                  float_modules: tuple[str, ...]) -> None:
    """NNCF's post-training int8 quantization of a float OpenVINO model, calibrated one image at a time;
    `float_modules` stay float; saved as target_xml + .bin."""
    import openvino as ov

    samples = [image[None].numpy() for image in calibration]
    with quiet_nncf() as nncf:
        scope = nncf.IgnoredScope(names=ignored_ops(converted, float_modules), validate=False)
        quantized = nncf.quantize(converted.clone(), nncf.Dataset(samples), subset_size=len(samples),
                                  preset=nncf.QuantizationPreset(NNCF_PRESET), ignored_scope=scope,
                                  fast_bias_correction=NNCF_FAST_BIAS_CORRECTION)
    ov.save_model(quantized, str(target_xml), compress_to_fp16=False)


def plain(builds: ModuleBuilds, batch: int) -> Callable[[Any], Any]:
    """compile_model(convert_model(model, example_input=x), "CPU", {"PERFORMANCE_HINT": "LATENCY"})."""
    import openvino as ov

    compiled = ov.compile_model(converted(builds), "CPU", {"PERFORMANCE_HINT": "LATENCY"})
    return lambda x: compiled(x)[0]


register(EngineSpec("openvino", "openvino", "deploy", True, (".onnx", ".xml"), OpenVinoEngine.from_file,
                    lambda source, threads, batch: OpenVinoEngine.from_module(source.builds, threads)),
         EngineSpec("openvino-onnx", "openvino", "deploy", True, (".onnx",), OpenVinoEngine.from_file,
                    races_files=False),
         FormatSpec("openvino", ".xml", "OpenVINO IR (the .xml with its .bin beside it)", write_openvino,
                    lambda: require("openvino"), companions=(".bin",),
                    suffix_hint=" (OpenVINO IR: the .xml, its weights go beside it in .bin)",
                    graph_key=lambda path: digest(path.read_text()), engine="openvino"),
         PlainRecipe("openvino-plain", plain, "openvino"))
