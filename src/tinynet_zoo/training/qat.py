"""Quantization-aware fine-tuning: the model is traced once (torch.export, a dynamic batch axis) and fake
quantization is inserted by the quantizer the `.pte` int8 export uses (`int8_scheme`: XNNPACK's quantizer, int8
symmetric per-channel weights, int8 per-tensor activations, SiLU and squeeze-excite in int8, batch norm folded into
the convolutions). The traced
graph shares the model's parameters and batch-norm buffers, so the training loop steps the ordinary timm model
through the quantized forward pass and the run's folders hold ordinary weights.
"""
from __future__ import annotations

import json
import os
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import int8_scheme
from ..errors import ExtraNotInstalledError, IncompatibleCheckpointError, InvalidArgumentError, summary
from ..system import is_installed
from .checkpoint import resume_point
from .run_folder import WEIGHTS

if TYPE_CHECKING:
    import torch.nn as nn

PACKAGES = ("torchao", "executorch")
EXTRA = "mobile"
SCHEME = {"quantizer": "XNNPACKQuantizer", "weights": "int8 symmetric per-channel",
          "activations": "int8 per-tensor", "silu": "int8 x * sigmoid(x)"}  # recorded in config.json under "qat"


def missing() -> list[str]:
    """The packages qat needs that are not installed."""
    return [name for name in PACKAGES if not is_installed(name)]


def require() -> None:
    """Raise ExtraNotInstalledError (naming the extra) unless torchao and ExecuTorch can be imported."""
    gone = missing()
    if gone:
        raise ExtraNotInstalledError(f"quantization-aware fine-tuning (qat=True, --qat) needs {' and '.join(gone)}, "
                                     f"which {'is' if len(gone) == 1 else 'are'} not installed: "
                                     f"pip install 'tinynet-zoo[{EXTRA}]'")


def check_request(qat: bool, resume: "str | Path | None", drop_path_rate: "float | None") -> "float | None":
    """Refuse what qat cannot do before any work (its packages missing, torchrun, stochastic depth, resuming a
    run trained the other way); the drop-path rate to build with (0 under qat unless given)."""
    if qat:
        require()
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if world > 1:
            raise InvalidArgumentError(f"qat=True runs in one process, not under torchrun ({world} processes): run "
                                       "`tinynet-zoo finetune ... --qat` without torchrun")
        if drop_path_rate:
            raise InvalidArgumentError(f"qat=True cannot train with stochastic depth (drop_path_rate="
                                       f"{drop_path_rate!r}, --drop-path-rate): a traced graph would keep dropping "
                                       "paths in evaluation; leave it unset or 0")
        drop_path_rate = 0.0
    if resume is not None:
        _check_resume(resume, qat)
    return drop_path_rate


def _check_resume(resume: "str | Path", qat: bool) -> None:
    """Refuse resuming a checkpoint trained with qat without it, or the reverse."""
    from safetensors import safe_open

    generation = resume_point(resume)
    try:
        with safe_open(str(generation / WEIGHTS), "pt") as handle:
            was = bool(json.loads((handle.metadata() or {}).get("config", "{}")).get("qat", False))
    except Exception:  # a damaged file is reported, with its generation, when the checkpoint is loaded
        return
    if was != qat:
        trained, asked = ("with", "without") if was else ("without", "with")
        raise IncompatibleCheckpointError(f"cannot resume {generation}: it was trained {trained} qat and this run "
                                          f"asks {asked} it; resume with the same setting, or fine-tune the run's "
                                          "best/ folder in a new --out folder")


def _check_model(model: "nn.Module") -> None:
    """Refuse models the traced graph cannot train like the eager one."""
    if getattr(model, "feature_info", None) is not None and not hasattr(model, "forward_head"):
        raise InvalidArgumentError("qat=True needs a classifier; this model was built with features_only=True")
    dropping = sorted({type(m).__name__ for m in model.modules() if float(getattr(m, "drop_prob", 0) or 0) > 0})
    if dropping:
        raise InvalidArgumentError(f"qat=True cannot train with stochastic depth ({', '.join(dropping)} with "
                                   "drop_prob > 0): a traced graph keeps dropping paths in evaluation; use "
                                   "drop_path_rate=0 (--drop-path-rate 0)")


def _switchable(prepared: Any, frozen_bn: bool) -> Any:
    """`prepared` with train()/eval() that switch its batch norm and dropout ops and its range observers: ranges
    are observed while training and frozen while evaluating; frozen_bn keeps batch norm on its running statistics."""
    from torchao.quantization.pt2e import (disable_observer, enable_observer, move_exported_model_to_eval,
                                           move_exported_model_to_train)

    def train(self: Any, mode: bool = True) -> Any:
        (move_exported_model_to_train if mode and not frozen_bn else move_exported_model_to_eval)(self)
        self.apply(enable_observer if mode else disable_observer)
        for module in self.modules():
            module.training = mode
        return self

    prepared.train = types.MethodType(train, prepared)
    prepared.eval = types.MethodType(lambda self: self.train(False), prepared)
    return prepared


def prepare(model: "nn.Module", example: "torch.Tensor", frozen_bn: bool = False) -> "nn.Module":
    """The model traced with XNNPACK's QAT fake quantization (any batch size); it trains the model's own
    parameters and batch-norm buffers."""
    _check_model(model)
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    model.train()
    example = example[:2].float().contiguous()  # batch norm in training mode needs two images
    if len(example) < 2:
        example = example.expand(2, *example.shape[1:]).contiguous()
    quantizer = int8_scheme.quantizer(qat=True)
    try:
        traced = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
        prepared = prepare_qat_pt2e(traced.module(), quantizer)
    except Exception as exc:  # torch.export and the quantizer raise many types for an unsupported model
        raise InvalidArgumentError(f"this model cannot be prepared for quantization-aware training "
                                   f"({summary(exc)}); fine-tune it without qat") from None
    return _switchable(prepared, frozen_bn)


def is_fake_quantized(module: "nn.Module") -> bool:
    """Whether `module` holds fake-quantization modules (a graph made by `prepare`)."""
    from torchao.quantization.pt2e import FakeQuantizeBase

    return any(isinstance(m, FakeQuantizeBase) for m in module.modules())
