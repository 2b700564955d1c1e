"""Key-layout converters: other projects' state_dict names → timm's, for the architecture being loaded."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable

from ..checks import choice
from ..errors import IncompatibleCheckpointError

if TYPE_CHECKING:
    from torch import Tensor

    from ..core.arch import Arch

StateDict = dict[str, "Tensor"]

# EfficientNet-PyTorch (lukemelas) names → timm names, per block kind.
_EFFNET_PYTORCH_BLOCK = {
    "ds": {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_se_reduce": "se.conv_reduce",
           "_se_expand": "se.conv_expand", "_project_conv": "conv_pw", "_bn2": "bn2"},
    "ir": {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
           "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand", "_project_conv": "conv_pwl",
           "_bn2": "bn3"},
}
_EFFNET_PYTORCH_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
                       "_fc": "classifier"}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")


def unwrap(state: dict) -> StateDict:
    """Checkpoints saved as {'state_dict': ...} or {'model': ...}, with DataParallel 'module.' prefixes."""
    for key in ("state_dict_ema", "state_dict", "model"):
        if key in state and isinstance(state[key], dict):
            state = state[key]
            break
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def from_timm(state: dict, arch: "Arch") -> StateDict:
    """timm layout: identity after unwrapping. The official TinyNet release (huawei-noah v1.2.0 .pth) uses it too."""
    return unwrap(state)


def from_efficientnet_pytorch(state: dict, arch: "Arch") -> StateDict:
    """EfficientNet-PyTorch names (_conv_stem, _blocks.N._depthwise_conv, ...) → timm's blocks.S.I.* names."""
    positions = [(b.stage, idx) for b, idx in zip(arch.blocks, _index_in_stage(arch))]
    out: StateDict = {}
    for key, value in unwrap(state).items():
        match = _BLOCK_KEY.match(key)
        if match:
            flat, module, param = int(match.group(1)), match.group(2), match.group(3)
            if flat >= len(positions):
                raise IncompatibleCheckpointError(f"checkpoint has block {flat} but the architecture has "
                                                  f"{len(positions)}")
            stage, idx = positions[flat]
            name = _EFFNET_PYTORCH_BLOCK[arch.blocks[flat].kind].get(module)
            out[f"blocks.{stage}.{idx}.{name}.{param}" if name else key] = value
        else:
            module, _, param = key.partition(".")
            out[f"{_EFFNET_PYTORCH_TOP[module]}.{param}" if module in _EFFNET_PYTORCH_TOP else key] = value
    return out


def _index_in_stage(arch: "Arch") -> list[int]:
    out, previous, count = [], None, 0
    for block in arch.blocks:
        count = count + 1 if block.stage == previous else 0
        previous = block.stage
        out.append(count)
    return out


CONVERTERS: dict[str, Callable[[dict, "Arch"], StateDict]] = {
    "timm": from_timm,
    "tinynet_official": from_timm,
    "efficientnet_pytorch": from_efficientnet_pytorch,
}


def to_timm(state: dict, layout: str, arch: "Arch") -> StateDict:
    """Convert a state_dict in `layout` to timm's names for `arch`."""
    return CONVERTERS[choice("key layout", layout, CONVERTERS)](state, arch)
