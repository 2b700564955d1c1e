"""One module's conversions for the engines (ExecuTorch lowering, OpenVINO conversion, ONNX exports), each made
once per key, the key naming what determines the conversion: everything built from one module in one place (a
bench's plain rows and auto's race, or one `runtime` call) shares them."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable


class ModuleBuilds:
    """An eval-mode torch module, its input resolution and a scratch folder, with the conversions made from it."""

    def __init__(self, module: Any, resolution: int, folder: Path) -> None:
        self.module, self.resolution, self.folder = module, resolution, Path(folder)
        self.made: dict[tuple, Any] = {}

    def once(self, key: tuple, make: Callable[[], Any]) -> Any:
        """make() the first time `key` is asked for; the same result every later time."""
        if key not in self.made:
            self.made[key] = make()
        return self.made[key]

    def drop(self, key: tuple) -> None:
        """Forget one conversion (an engine that keeps only its latest few batch sizes lets the others go)."""
        self.made.pop(key, None)
