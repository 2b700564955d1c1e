"""BatchNorm folding: every BatchNorm that directly follows a conv merged into that conv (eval-mode models)."""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch.nn as nn


def fold_batchnorm(model: "nn.Module") -> "nn.Module":
    """A copy of an eval-mode model with every BatchNorm that directly follows a conv folded into it."""
    import torch.nn as nn
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    folded = copy.deepcopy(model).eval()
    for parent in folded.modules():
        previous = None
        for name, child in list(parent.named_children()):
            if type(previous) is nn.Conv2d and isinstance(child, nn.BatchNorm2d) and child.track_running_stats:
                weight, bias = fuse_conv_bn_weights(previous.weight, previous.bias, child.running_mean,
                                                    child.running_var, child.eps, child.weight, child.bias)
                previous.weight, previous.bias = weight, bias
                # timm's BatchNormAct2d applies dropout and an activation after normalising: keep those
                tail = [m for m in (getattr(child, "drop", None), getattr(child, "act", None)) if m is not None]
                setattr(parent, name, nn.Sequential(*tail) if tail else nn.Identity())
            previous = child
    return folded
