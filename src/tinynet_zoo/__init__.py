"""tinynet_zoo: TinyNets (Han et al. 2020, "Model Rubik's Cube") and a formula for any MAC budget.

Importing the package is cheap: torch and timm load only when a model is built or counted.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "create": "build",
    "Twist": "twist",
    "giant": "twist",
    "list_models": "registry",
    "model_info": "info",
    "ModelInfo": "info",
    "for_flops": "formula",
    "fit_formula": "formula",
    "Formula": "formula",
    "parse_budget": "budget",
    "data_config": "data",
    "transforms": "data",
    "freeze": "freezing",
    "unfreeze": "freezing",
    "finetune": "finetuning",
    "TrainConfig": "train",
    "push_to_hub": "hub",
    "save_pretrained": "hub",
    "load_pretrained": "hub",
    "run_search": "search.run",
    "search_report": "search.analysis",
    "export": "deploy.export",
    "runtime": "deploy.runtime",
    "for_latency": "deploy.latency",
    "bench": "deploy.bench",
    "BackendNotInstalledError": "errors",
    "TinyNetZooError": "errors",
    "UnknownModelError": "errors",
    "InvalidArgumentError": "errors",
    "BudgetError": "errors",
    "BudgetWarning": "errors",
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
