"""The package's shape: layers import only downwards, no import cycles (function-level imports counted), small
functions and modules, and importing any module loads neither torch nor timm."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "tinynet_zoo"
INFRA = {"errors", "checks", "files", "system", "images"}
FACADE = {"factory", "info", "preprocess", "timm_entry", "calibration", "int8_scheme"}
# rank of each layer: a module may import modules of a lower rank, or of its own subpackage (without cycles)
RANKS = {"infra": 0, "core": 1, "weights": 2, "facade": 3, "training": 4, "deploy": 4, "search": 5, "shrinking": 5,
         "cli": 6}
MAX_FUNCTION_LINES, MAX_MODULE_LINES = 60, 400


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def layer(module: str) -> str:
    """The layer a module belongs to."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in INFRA:
        return "infra"
    return "facade" if parts[1] in FACADE else parts[1]


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            lines.update(range(node.lineno, node.end_lineno + 1))
    return lines


def imports(module: str) -> list[tuple[str, int, bool]]:
    """(imported package module, line, inside a function) for every import of a module of the package."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    skip = _type_checking_lines(tree)
    functions = [(n.lineno, n.end_lineno) for n in ast.walk(tree)
                 if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or node.lineno in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else [])) if node.level else (node.module or "")
            names = [target] + [f"{target}.{a.name}" for a in node.names]
        else:
            names = [a.name for a in node.names]
        inner = any(lo < node.lineno <= hi for lo, hi in functions)
        out += [(name, node.lineno, inner) for name in names if name in MODULES and name != "tinynet_zoo"
                and name != module]
    return out


EDGES = {m: {t for t, _, _ in imports(m) if not m.startswith(t + ".")} for m in MODULES}


def test_no_import_cycles():
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in EDGES[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in MODULES:
        if module not in index:
            visit(module)
    assert not cycles, f"import cycles: {cycles}"


def test_layers_import_only_downwards():
    bad = []
    for module, targets in EDGES.items():
        for target in targets:
            a, b = layer(module), layer(target)
            if a != b and RANKS[b] >= RANKS[a]:
                bad.append(f"{module} ({a}) -> {target} ({b})")
    assert not bad, "forbidden layer edges:\n" + "\n".join(sorted(bad))


def test_function_level_imports_of_the_package_are_gone():
    # a package module imported inside a function hides an edge (and a cycle) from readers: none is needed,
    # since no module of the package imports torch or timm at import time
    inner = [f"{m}:{line} imports {t}" for m in MODULES for t, line, fn in imports(m) if fn]
    assert not inner, "\n".join(inner)


def test_small_functions_and_modules():
    long_functions, big_modules = [], []
    for module, path in MODULES.items():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            big_modules.append(f"{module}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = node.end_lineno - node.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    long_functions.append(f"{module}.{node.name}: {size} lines")
    assert not big_modules and not long_functions, big_modules + long_functions


def test_the_layer_table_covers_every_module():
    assert {layer(m) for m in MODULES} <= set(RANKS)


@pytest.mark.parametrize("heavy", [("torch", "timm", "sklearn", "ray", "matplotlib", "onnx", "openvino", "executorch")])
def test_importing_every_module_loads_no_heavy_package(heavy):
    names = sorted(m for m in MODULES if not m.endswith("__main__"))
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n    importlib.import_module(name)\n"
            "import tinynet_zoo.cli\ntinynet_zoo.cli.build_parser()\n"
            f"print(sorted(p for p in {heavy!r} if p in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
