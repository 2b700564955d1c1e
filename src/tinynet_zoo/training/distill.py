"""Logit distillation: the student learns the teacher's softened predictions on the user's images, beside the
labels: loss = weight * T^2 * KL(teacher/T || student/T) + (1 - weight) * cross-entropy(labels)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..checks import number
from ..errors import InvalidArgumentError

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

DISTILL_WEIGHT, TEMPERATURE = 0.7, 2.0


class IndexedDataset:
    """A dataset whose items also carry their index (so a teacher's outputs can be cached per image)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, Any, int]:
        image, label = self.dataset[index]
        return image, label, index


class Distillation:
    """The training loss of a distilled run; teacher logits are cached per image when augmentation is off (the
    teacher then sees the same image every epoch)."""

    def __init__(self, teacher: "nn.Module", classes: int, weight: float = DISTILL_WEIGHT,
                 temperature: float = TEMPERATURE, label_smoothing: float = 0.0, cache: bool = False) -> None:
        self.weight = number("distill_weight", weight, 0, 1)
        self.temperature = number("temperature", temperature, 0, 20, low_open=True)
        teacher_classes = getattr(teacher, "num_classes", None)
        if teacher_classes != classes:
            raise InvalidArgumentError(f"the teacher predicts {teacher_classes} classes but the data has {classes}; "
                                       "distil from a teacher fine-tuned on this data (e.g. its finetune best/ folder)")
        self.teacher, self.label_smoothing, self.cache = teacher.eval(), label_smoothing, {} if cache else None
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)

    def to(self, device: Any) -> "Distillation":
        """Move the teacher to the training device."""
        self.teacher.to(device)
        return self

    def _teacher_logits(self, images: "torch.Tensor", indices: "torch.Tensor | None") -> "torch.Tensor":
        import torch

        if self.cache is None or indices is None:
            with torch.inference_mode():
                return self.teacher(images).float().clone()
        keys = [int(i) for i in indices]
        missing = [j for j, key in enumerate(keys) if key not in self.cache]
        if missing:  # only the images not seen before go through the teacher
            with torch.inference_mode():
                logits = self.teacher(images[missing]).float().cpu()
            for j, row in zip(missing, logits):
                self.cache[keys[j]] = row
        return torch.stack([self.cache[key] for key in keys]).to(images.device)

    def __call__(self, logits: "torch.Tensor", targets: "torch.Tensor", images: "torch.Tensor",
                 indices: "torch.Tensor | None" = None) -> "torch.Tensor":
        """The distillation loss of one batch."""
        import torch.nn.functional as F

        t = self.temperature
        soft = self._teacher_logits(images, indices)
        kl = F.kl_div(F.log_softmax(logits.float() / t, -1), F.log_softmax(soft / t, -1), log_target=True,
                      reduction="batchmean") * t * t
        if self.weight == 1:
            return kl
        hard = F.cross_entropy(logits.float(), targets, label_smoothing=self.label_smoothing)
        return self.weight * kl + (1 - self.weight) * hard
