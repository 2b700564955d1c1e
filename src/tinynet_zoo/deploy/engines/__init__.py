"""The deploy engines, one module per engine family, each registering its engines, export formats and plain
recipes into deploy/engines/base.py's table. A new engine is one new module here and one line below."""
from . import onnxruntime, openvino, executorch, torch  # noqa: F401  (order: the default engine for a file first)
from .base import FORMATS, RECIPES, SPECS, EngineSpec, FormatSpec, PlainRecipe

__all__ = ["FORMATS", "RECIPES", "SPECS", "EngineSpec", "FormatSpec", "PlainRecipe"]
