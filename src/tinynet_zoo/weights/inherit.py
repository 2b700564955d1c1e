"""Weight inheritance: a smaller twist initialised from a larger trained network of the same base.

Each stage keeps the teacher's first blocks (blocks are named by stage and index). Within every channel group
(see `channels.py`) the student keeps the teacher's *most important* channels, one choice shared by every
tensor of the group (a stage's residual stream, a block's expansion, its squeeze-excite, the head), in their
original order. Importance is measured on calibration images (mean absolute activation: the stronger) or, with
no data, read from the weights (the batch-norm scale of the layer that writes each channel: weaker). Student
blocks without a teacher block keep their fresh initialisation, residual ones with the last norm's scale at
zero (they start as the identity); where the student is wider, only the overlap is copied.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from ..core.registry import ENTRIES, Entry
from ..core.twist import Twist
from ..errors import InvalidArgumentError
from .channels import group_sizes, key_groups, last_norm, positions

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

    from ..core.arch import Arch

Importance = dict[str, "torch.Tensor"]  # channel group -> one score per teacher channel (higher: keep)
Means = dict[str, "torch.Tensor"]  # weight key of a channel-mixing layer -> mean of each of its input channels


def teachers_for(twist: Twist) -> list[Entry]:
    """Registry entries with a checkpoint on the same base, at least as large as `twist`, nearest first."""
    found = [e for e in ENTRIES if e.checkpoint and e.twist.base == twist.base and e.twist.macs >= twist.macs]
    return sorted(found, key=lambda e: e.twist.macs)


def leading_importance(arch: "Arch") -> Importance:
    """Scores that keep the first channels of every group (plain leading-slice inheritance)."""
    import torch

    return {group: -torch.arange(size, dtype=torch.float32) for group, size in group_sizes(arch).items()}


def weight_importance(state: dict[str, Any], arch: "Arch") -> Importance:
    """Scores from the weights alone: |batch-norm scale| of the layer writing each channel (no data needed)."""
    norm = arch.base.head_norm  # a pooled head has no norm: the size of each output's weights instead
    head = state[f"{norm}.weight"].abs().float() if norm else state["conv_head.weight"].abs().float().flatten(1).sum(1)
    scores: Importance = {"stem": state["bn1.weight"].abs().float(), "head": head}
    last = last_norm(arch)
    for block, (stage, index) in zip(arch.blocks, positions(arch)):
        prefix = f"blocks.{stage}.{index}"
        stream = state[f"{prefix}.{last[prefix]}.weight"].abs().float()
        scores[f"s{stage}"] = scores.get(f"s{stage}", 0) + stream  # every block of the stage writes the stream
        if block.kind == "ir":
            scores[f"m{stage}.{index}"] = state[f"{prefix}.bn2.weight"].abs().float()
        if block.se_chs:
            scores[f"e{stage}.{index}"] = state[f"{prefix}.se.conv_reduce.weight"].abs().float().flatten(1).sum(1)
    return scores


def measure_activations(teacher: "nn.Module", arch: "Arch", batches: Iterable["torch.Tensor"]
                        ) -> tuple[Importance, Means]:
    """On calibration images: each channel's mean absolute activation (its importance), and the mean input of
    every layer that mixes channels (what removing a channel takes away from that layer's output)."""
    import torch

    scores: Importance = {}
    means: Means = {}

    def score(group: str) -> Any:
        def hook(module: Any, inputs: Any, output: "torch.Tensor") -> None:
            scores[group] = scores.get(group, 0) + output.detach().abs().float().mean(dim=(0, 2, 3))
        return hook

    def mean_input(key: str) -> Any:
        def hook(module: Any, inputs: Any) -> None:
            x = inputs[0].detach().float()
            means[key] = means.get(key, 0) + (x.mean(dim=(0, 2, 3)) if x.dim() == 4 else x.mean(dim=0))
        return hook

    head = getattr(teacher, arch.base.head_norm) if arch.base.head_norm else teacher.conv_head
    watched = [(teacher.bn1, "stem"), (head, "head")]
    for block, (stage, index) in zip(arch.blocks, positions(arch)):
        module = teacher.blocks[stage][index]
        watched.append((module, f"s{stage}"))
        if block.kind == "ir":
            watched.append((module.bn1, f"m{stage}.{index}"))
        if block.se_chs:
            watched.append((module.se.conv_reduce, f"e{stage}.{index}"))
    named = dict(teacher.named_modules())
    handles = [module.register_forward_hook(score(group)) for module, group in watched]
    handles += [named[key.rsplit(".", 1)[0]].register_forward_pre_hook(mean_input(key))
                for key in _followers(arch)]
    count = 0
    try:
        teacher.eval()
        with torch.inference_mode():
            for batch in batches:
                teacher(batch)
                count += 1
    finally:
        for handle in handles:
            handle.remove()
    return scores, {key: value / max(count, 1) for key, value in means.items()}


def _followers(arch: "Arch") -> dict[str, str]:
    """Each layer that mixes channels → the tensor that absorbs the mean of the inputs it loses: the running
    mean of the batch norm right after it, or its own bias."""
    norm = arch.base.head_norm
    out = {"conv_head.weight": f"{norm}.running_mean" if norm else "conv_head.bias",
           "classifier.weight": "classifier.bias"}
    for block, (stage, index) in zip(arch.blocks, positions(arch)):
        prefix = f"blocks.{stage}.{index}"
        if block.kind == "cn":
            out[f"{prefix}.conv.weight"] = f"{prefix}.bn1.running_mean"
        elif block.kind == "ds":
            out[f"{prefix}.conv_pw.weight"] = f"{prefix}.bn2.running_mean"
        else:
            out[f"{prefix}.conv_pw.weight"] = f"{prefix}.bn1.running_mean"
            out[f"{prefix}.conv_pwl.weight"] = f"{prefix}.bn3.running_mean"
        if block.se_chs:
            out[f"{prefix}.se.conv_reduce.weight"] = f"{prefix}.se.conv_reduce.bias"
            out[f"{prefix}.se.conv_expand.weight"] = f"{prefix}.se.conv_expand.bias"
    return out


def select(importance: Importance, teacher: "Arch", student: "Arch", num_classes: int) -> dict[str, "torch.Tensor"]:
    """The teacher channels each student group keeps: the most important ones, in their original order."""
    import torch

    kept, theirs = {}, group_sizes(teacher, num_classes)
    for group, size in group_sizes(student, num_classes).items():
        available = theirs.get(group, 0)
        scores = importance.get(group)
        if scores is None or size >= available or group == "classes":
            kept[group] = torch.arange(min(size, available))
        else:
            kept[group] = scores.topk(size).indices.sort().values
    return kept


def inherit(teacher_state: dict[str, Any], teacher: "Arch", student_state: dict[str, Any], student: "Arch",
            importance: "Importance | None" = None, means: "Means | None" = None) -> dict[str, Any]:
    """The student's tensors cut from the teacher's by channel importance (leading slice when None); with the
    teacher's mean inputs (`means`), what each removed input channel contributed on average is added back to
    the layer's bias or to the running mean of the norm after it, so downstream statistics stay centred."""
    num_classes = int(student_state["classifier.weight"].shape[0]) if "classifier.weight" in student_state else 0
    kept = select(importance if importance is not None else leading_importance(teacher), teacher, student,
                  num_classes)
    groups, out = key_groups(student), {}
    for key, value in student_state.items():
        source = teacher_state.get(key)
        if source is None or source.dim() != value.dim():
            out[key] = value
            continue
        for dim, group in enumerate(groups.get(key, ())):
            if group is not None and kept[group].numel() < source.shape[dim]:
                source = source.index_select(dim, kept[group])
        overlap = tuple(slice(0, min(a, b)) for a, b in zip(value.shape, source.shape))
        value = value.clone()
        value[overlap] = source[overlap]
        out[key] = value
    if means:
        _compensate(out, teacher_state, student, kept, means)
    _identity_for_new_blocks(out, teacher_state, student)
    return out


def _compensate(state: dict[str, Any], teacher_state: dict[str, Any], student: "Arch", kept: dict[str, Any],
                means: Means) -> None:
    """Add the mean contribution of every removed input channel back where the layer's output is centred."""
    groups = key_groups(student)
    for key, follower in _followers(student).items():
        weight, mean = teacher_state.get(key), means.get(key)
        out_group, in_group = groups[key][0], groups[key][1]
        if weight is None or mean is None or follower not in state:
            continue
        keep = set(kept[in_group].tolist())
        removed = [c for c in range(weight.shape[1]) if c not in keep]
        if not removed:
            continue
        lost = weight.flatten(2).sum(-1) if weight.dim() == 4 else weight  # 1x1 convs and linears
        delta = lost[:, removed].float() @ mean[removed].to(lost.device)
        delta = delta.index_select(0, kept[out_group]) if kept[out_group].numel() < delta.numel() else delta
        target = state[follower]
        n = min(len(target), len(delta))
        sign = -1.0 if follower.endswith("running_mean") else 1.0  # a larger input means a larger mean to remove
        target = target.clone()
        target[:n] += sign * delta[:n].to(target.dtype)
        state[follower] = target


def _identity_for_new_blocks(state: dict[str, Any], teacher_state: dict[str, Any], student: "Arch") -> None:
    """Residual blocks the teacher lacks start as the identity: the scale of their last norm is zero."""
    last = last_norm(student)
    for block, (stage, index) in zip(student.blocks, positions(student)):
        prefix = f"blocks.{stage}.{index}"
        key = f"{prefix}.{last[prefix]}.weight"
        if block.skip and key in state and key not in teacher_state:
            state[key] = state[key].clone().zero_()


def check_teacher(teacher: Twist, student: Twist) -> None:
    """A teacher must share the student's base (the same stage table) to pass weights on."""
    if teacher.base != student.base:
        raise InvalidArgumentError(f"a teacher on {teacher.base} cannot pass weights to a student on {student.base}: "
                                   "inheritance needs the same base (choose a teacher of that base)")
