"""tinynet_zoo: TinyNets (Han et al. 2020, "Model Rubik's Cube") and a formula for any MAC budget.

Importing the package is cheap: torch and timm load only when a model is built. The zoo's names join timm's
registry on the first `create`, on `register_timm()`, or at import when timm is already imported.
"""
from __future__ import annotations

import importlib
import sys
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "create": "factory",
    "register_timm": "timm_entry",
    "load_pretrained": "factory",
    "resolve": "factory",
    "Target": "factory",
    "Twist": "core.twist",
    "giant": "core.twist",
    "list_models": "core.registry",
    "model_info": "info",
    "ModelInfo": "info",
    "for_flops": "core.formula",
    "fit_formula": "core.formula",
    "Formula": "core.formula",
    "parse_budget": "core.budget",
    "data_config": "preprocess",
    "transforms": "preprocess",
    "freeze": "training.freezing",
    "unfreeze": "training.freezing",
    "finetune": "training.finetune",
    "TrainConfig": "training.config",
    "TrainResult": "training.config",
    "push_to_hub": "weights.hub",
    "save_pretrained": "weights.folder",
    "run_search": "search.run",
    "search_report": "search.analysis",
    "export": "deploy.export",
    "runtime": "deploy.runtime",
    "for_latency": "deploy.latency",
    "bench": "deploy.bench",
    "shrink": "shrinking.run",
    "ShrinkReport": "shrinking.report",
    "recalibrate_bn": "calibration",
    **{name: "errors" for name in (
        "TinyNetZooError", "InvalidArgumentError", "UnknownNameError", "UnknownModelError", "UnknownTagError",
        "BudgetError", "ChecksumError", "CheckpointNotFoundError", "HubError", "IncompatibleCheckpointError",
        "UnreadableModelError", "DataError", "ExtraNotInstalledError", "BackendNotInstalledError", "DataWarning",
        "UnverifiedCheckpointWarning", "BudgetWarning", "AccuracyLossError", "QuantizationError")},
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tinynet_zoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if "timm" in sys.modules:  # timm is paid for already: register the zoo's names in its registry now
    __getattr__("register_timm")()
