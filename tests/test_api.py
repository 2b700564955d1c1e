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
