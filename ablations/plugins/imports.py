"""Import paths in the YAML: `"package.module:callable"` names a user's model builder, dataset
function or training loop. The module is imported from the working directory or the installed
packages; the YAML itself stays safe (yaml.safe_load, no tags that execute): only a key that is
documented to take an import path ever imports anything."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ablations.errors import ConfigError

_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class PluginError(ConfigError):
    """An import path that does not resolve, or user code that does not keep its contract."""


def installed_file(package: str, *parts: str) -> Path | None:
    """A file inside an installed top-level package, found without importing the package (an
    import that can cost a second); None when the package or the file is not there."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(locations[0], *parts) if locations else None
    return path if path is not None and path.is_file() else None


def is_import_path(name: Any) -> bool:
    """Whether a config value is an import path rather than a registered name."""
    return isinstance(name, str) and ":" in name


def resolve(path: str, key: str) -> Callable[..., Any]:
    """The callable at `path` ("pkg.module:attr.attr"); `key` (e.g. `model.arch`) goes in messages."""
    if not _PATH.match(path):
        raise PluginError(f"{key}: {path!r} is not an import path; write it as 'package.module:callable'")
    module_name, attr_path = path.split(":", 1)
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)  # the user's own package next to the YAML, as `python -m` would find it
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        missing = err.name or module_name
        raise PluginError(
            f"{key}: cannot import {path!r}: no module named {missing!r}; run from the folder that holds "
            f"{module_name.split('.')[0]}/ (or {module_name.split('.')[0]}.py), or pip install the package"
        ) from None
    except Exception as err:  # noqa: BLE001 - the user's module raised while importing
        raise PluginError(f"{key}: importing {module_name!r} raised {type(err).__name__}: {err}") from None
    target: Any = module
    for part in attr_path.split("."):
        if not hasattr(target, part):
            public = sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n)))
            hint = f"; callables there: {', '.join(public[:12])}" if public else ""
            raise PluginError(f"{key}: module {module_name!r} has no attribute {attr_path!r}{hint}")
        target = getattr(target, part)
    if not callable(target):
        raise PluginError(f"{key}: {path!r} is a {type(target).__name__}, not a function or class")
    return target


def parameters(fn: Callable[..., Any]) -> tuple[set[str], bool]:
    """The keyword names `fn` accepts, and whether it also takes **kwargs (a class: its __init__)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have no signature: pass nothing by name
        return set(), False
    names = {
        name
        for name, p in sig.parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    return names, var_kw


def required(fn: Callable[..., Any]) -> set[str]:
    """The keyword names `fn` takes without a default."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return set()
    return {name for name, p in sig.parameters.items() if p.default is inspect.Parameter.empty}


def call_with(fn: Callable[..., Any], offered: dict[str, Any], given: dict[str, Any], key: str) -> Any:
    """Call `fn` with every `given` argument (the YAML's args: each must be accepted) and every
    `offered` one its signature names."""
    names, var_kw = parameters(fn)
    unknown = [k for k in given if k not in names and not var_kw]
    if unknown:
        raise PluginError(
            f"{key}.args: {', '.join(unknown)} not accepted by {getattr(fn, '__qualname__', fn)}; "
            f"its parameters: {', '.join(sorted(names)) or '(none)'}"
        )
    kwargs = {k: v for k, v in offered.items() if k in names}
    kwargs.update(given)
    return fn(**kwargs)
