"""The public names: every export resolves to what it names, even after every submodule was imported."""
import importlib
import inspect
import pkgutil
import types

import tinynet_zoo as tz


def test_exports_are_not_shadowed_by_submodules():
    # importing a submodule sets an attribute of that name on the package: an export of the same name would
    # silently turn into the module (tz.finetune(...) -> "'module' object is not callable")
    for info in pkgutil.walk_packages(tz.__path__, "tinynet_zoo."):
        importlib.import_module(info.name)
    for name in tz.__all__:
        value = getattr(tz, name)
        assert not isinstance(value, types.ModuleType), f"tz.{name} is a module"
        assert value.__name__ == name


def test_public_functions_have_docstrings_and_hints():
    for name in tz.__all__:
        value = getattr(tz, name)
        assert inspect.getdoc(value), f"tz.{name} has no docstring"
        if inspect.isfunction(value):
            hints = inspect.signature(value)
            assert hints.return_annotation is not inspect.Signature.empty, f"tz.{name} has no return type"


def test_documented_public_names_equal_all():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()
    # the first cell of every table row that starts with a backticked name (spec rows name examples, not API)
    documented = set(re.findall(r"^\| `([A-Za-z_]+)[(`]", text, flags=re.MULTILINE))
    assert documented == set(tz.__all__), (sorted(documented - set(tz.__all__)), sorted(set(tz.__all__) - documented))


def test_every_error_class_is_importable_and_what_callers_expect():
    from tinynet_zoo.errors import ERRORS

    assert {e.__name__ for e in ERRORS} <= set(tz.__all__)
    assert issubclass(tz.UnknownNameError, ValueError) and issubclass(tz.UnknownNameError, KeyError)
    assert issubclass(tz.UnknownTagError, tz.UnknownModelError) and issubclass(tz.BudgetError, ValueError)
    assert issubclass(tz.BackendNotInstalledError, ImportError) and issubclass(tz.ChecksumError, OSError)
    assert str(tz.UnknownNameError("unknown x 'y'")) == "unknown x 'y'"  # not KeyError's repr
