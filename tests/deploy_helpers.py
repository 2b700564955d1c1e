"""Shared by the deploy tests: a small twist with non-trivial BatchNorm statistics, its eager logits, seeded
batches, and exports made once per test session and shared by the xdist workers."""
import json
import os
from pathlib import Path

import torch

import tinynet_zoo as tz

RES = 64
TWIST = tz.Twist(0.4, 0.4, 0.4, RES)


def small_model():
    """A small twist whose BatchNorm statistics are not the identity, so folding and the 1e-4 check matter."""
    torch.manual_seed(0)
    model = tz.create(TWIST).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
        model.classifier.weight.normal_(0, 0.5)
    return model


def eager(model, x):
    with torch.inference_mode():
        return model(x).numpy()


def batch_of(n, seed=0):
    return torch.randn(n, 3, RES, RES, generator=torch.Generator().manual_seed(seed))


def shared_export(tmp_path_factory, model, name, **options):
    """tz.export(model, <shared folder>/name, **options), made by the first worker that asks (one lock per file,
    so two workers can make two different files at once); the report as a dict with a Path."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "deploy_exports"
    root.mkdir(exist_ok=True)
    saved = root / f"{name}.json"
    with FileLock(str(root / f"{name}.lock")):
        if not saved.exists():
            saved.write_text(json.dumps(tz.export(model, root / name, **options).to_dict()))
    report = json.loads(saved.read_text())
    return {**report, "path": Path(report["path"])}
