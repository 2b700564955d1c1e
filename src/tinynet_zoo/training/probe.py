"""A head warm start ("linear probe, then fine-tune"): the new classifier is first fitted on the frozen pretrained
features, so fine-tuning starts from a good head instead of one that pushes random gradients into the backbone."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

PROBE_L2 = 1e-3  # weight decay of the logistic regression (per sample, on pooled features)
PROBE_ITERATIONS = 100


def features(model: "nn.Module", dataset: Any, batch_size: int = 64) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Pooled pre-classifier features and labels of a dataset, computed once in eval mode."""
    import torch
    from torch.utils.data import DataLoader

    model.eval()
    found, labels = [], []
    with torch.inference_mode():
        for images, targets in DataLoader(dataset, batch_size=batch_size):
            found.append(model.forward_head(model.forward_features(images), pre_logits=True).float())
            labels.append(targets)
    return torch.cat(found), torch.cat(labels)


def fit_head(model: "nn.Module", dataset: Any, batch_size: int = 64, l2: float = PROBE_L2,
             iterations: int = PROBE_ITERATIONS) -> dict[str, float]:
    """Fit the model's classifier as a logistic regression on its frozen features (L-BFGS); report the probe."""
    import torch
    import torch.nn.functional as F

    tic = time.perf_counter()
    x, y = features(model, dataset, batch_size)
    classes = model.classifier.out_features
    weight = torch.zeros(classes, x.shape[1], requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=iterations, history_size=20,
                                  line_search_fn="strong_wolfe")

    def loss() -> "torch.Tensor":
        optimizer.zero_grad()
        value = F.cross_entropy(x @ weight.T + bias, y) + l2 * weight.pow(2).sum()
        value.backward()
        return value

    optimizer.step(loss)
    with torch.no_grad():
        model.classifier.weight.copy_(weight)
        model.classifier.bias.copy_(bias)
        train_top1 = 100.0 * float(((x @ weight.T + bias).argmax(1) == y).float().mean())
    return {"probe_train_top1": train_top1, "probe_s": time.perf_counter() - tic, "probe_images": len(y)}
