"""The fingerprint that decides when a cached subset run is reusable.

A cached loss is reused only when everything that determines it is the same: the model class and
hyperparameters; the code (:func:`_code`: source files, the project files they import, package versions); the
initial weights and buffers (their bytes) and which parameters are frozen; the settings of the user's
callbacks that the subset runs share (a fine-tuning schedule, early stopping); the subset's own train examples
(so a larger budget reuses the smaller subsets) and the validation batches (their contents); the wrapped
datamodule's plain settings; the seed; the Trainer settings in :data:`TRAINER_SETTINGS` (the same list builds
the subset Trainers); and the placement (accelerator kind and number of processes: under DDP the effective
batch grows with it). Each part is hashed separately, so a re-run can say which one changed."""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import pickle
import sys
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: The user's Trainer settings a subset run inherits, and that the fingerprint hashes.
TRAINER_SETTINGS: tuple[str, ...] = tuple(
    (
        "precision max_epochs min_epochs max_steps min_steps gradient_clip_val gradient_clip_algorithm "
        "accumulate_grad_batches limit_train_batches limit_val_batches check_val_every_n_epoch "
        "log_every_n_steps"
    ).split()
)


def trainer_settings(trainer) -> dict[str, Any]:
    """The values of :data:`TRAINER_SETTINGS` on ``trainer``, as ``L.Trainer`` takes them."""
    out = {name: getattr(trainer, name) for name in TRAINER_SETTINGS}
    algo = out["gradient_clip_algorithm"]
    out["gradient_clip_algorithm"] = getattr(algo, "value", algo)
    if out["min_steps"] is not None and out["min_steps"] < 0:
        out["min_steps"] = None
    return out


def fingerprint_parts(
    pl_module, dm, trainer, monitor: str, snapshot, callbacks: Sequence[Any] = ()
) -> dict[str, str]:
    """Hashes of everything that determines a subset's loss, one per part (see the module doc).
    ``snapshot`` is the module's :class:`~lightning_rectlaw.plugin.runs.ModuleState` before training;
    ``callbacks`` the user's callbacks the subset runs get a copy of."""
    hparams = sorted(dict(getattr(pl_module, "hparams", {})).items())
    return {
        "model": digest((type(pl_module).__qualname__, hparams)),
        "weights": digest(snapshot.tensors()),
        "frozen parameters": digest(sorted(snapshot.frozen)),
        "validation data": digest(list(_batches(dm.val_dataloader()))),
        "datamodule settings": digest(
            (type(dm.datamodule).__qualname__, _plain_settings(dm.datamodule), dm.batch_size, dm.full_size)
        ),
        "code": digest(_code(pl_module, dm, callbacks)),
        "callbacks": digest(
            [(type(cb).__qualname__, _plain_settings(cb, private=True, kinds=_DATA)) for cb in callbacks]
        ),
        "seed": digest(dm.seed),
        "trainer settings": digest((sorted(trainer_settings(trainer).items()), monitor)),
        "placement": digest((trainer.strategy.root_device.type, trainer.world_size)),
    }


def train_digests(dm) -> dict[int, str]:
    """Per subset size, a hash of its train examples. The subsets are prefixes of one seeded
    permutation, so one pass hashes them all; a size's hash does not depend on the budget, and a
    larger budget (an adaptive sweep's next rung) reuses the smaller sizes already run."""
    bounds = set(dm.sizes)
    h = hashlib.blake2b(digest_size=16)
    h.update(b"[")
    out = {}
    for n, i in enumerate(dm.indices(max(dm.sizes)), start=1):
        _update(h, dm.train_dataset[int(i)])
        if n in bounds:
            closed = h.copy()
            closed.update(b"]")
            out[n] = closed.hexdigest()
    return out


#: Packages whose code the torch and Lightning versions already stand for (and the standard
#: library: the Python version does).
_FRAMEWORK = ("builtins", "torch", "lightning", "pytorch_lightning", "lightning_fabric")


def _code(pl_module, dm, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """The source of every file that defines a class of the module's submodules (and their
    bases), of the wrapped datamodule, or the train loader's collate and worker-init functions
    (a changed ``training_step``, layer or tokenising collate is a different computation), with
    the project files those files import (see :func:`_project_imports`), and the versions of
    Python, torch, Lightning and the packages those files belong to."""
    loader = dm.train_dataloader()  # the full train loader: no subset is active yet
    objects: list[Any] = [type(m) for m in pl_module.modules()] + [type(dm.datamodule)]
    objects += [f for f in (loader.collate_fn, loader.worker_init_fn) if f is not None]
    for cb in callbacks:  # a fine-tuning callback's class, and the functions it was given
        objects += [type(cb)] + [v for v in vars(cb).values() if isinstance(v, types.FunctionType)]
    sources: dict[str, str] = {}
    for obj in objects:
        obj = getattr(obj, "func", obj)  # functools.partial
        for klass in obj.__mro__ if isinstance(obj, type) else (obj,):
            name = getattr(klass, "__module__", None) or ""
            if not (_is_framework(name) or name in sources):
                sources[name] = _source_text(name, klass)
    pending = list(sources)
    while pending:
        for name in _project_imports(pending.pop()):
            if name not in sources:
                sources[name] = _source_text(name, sys.modules[name])
                pending.append(name)
    packages = {name.split(".")[0] for name in sources} - {"__main__"}
    import lightning

    versions = {"python": sys.version, "torch": torch.__version__, "lightning": lightning.__version__}
    distributions = None  # read only for a package without __version__ (a scan of site-packages)
    for package in sorted(packages):
        version = getattr(sys.modules.get(package), "__version__", None)
        if version is None:  # its installed distribution's version
            distributions = distributions or importlib.metadata.packages_distributions()
            version = [_distribution_version(d) for d in distributions.get(package, ())] or None
        if version is not None:
            versions[package] = str(version)
    return {"sources": sources, "versions": versions}


def _distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _is_framework(module_name: str) -> bool:
    top = module_name.split(".")[0]
    return top in _FRAMEWORK or top in sys.stdlib_module_names


def _project_imports(module_name: str) -> list[str]:
    """The modules of the user's project that ``module_name`` uses: modules, functions and classes
    in its namespace that come from a source file outside the installed packages (a helper
    module next to the training script, an editable install); installed packages are not followed."""
    module = sys.modules.get(module_name)
    out = set()
    for value in vars(module).values() if module is not None else ():
        if isinstance(value, types.ModuleType):
            name = value.__name__
        elif isinstance(value, (type, types.FunctionType)):
            name = getattr(value, "__module__", None)
        else:
            continue
        if isinstance(name, str) and name != module_name and _is_project_file(name):
            out.add(name)
    return sorted(out)


def _is_project_file(module_name: str) -> bool:
    """Whether ``module_name`` was loaded from a source file that is not part of an installed
    package (nor the standard library nor the framework)."""
    if _is_framework(module_name):
        return False
    path = getattr(sys.modules.get(module_name), "__file__", None)
    if not path or not path.endswith(".py"):
        return False
    return not {"site-packages", "dist-packages"} & set(Path(path).parts)


def _source_text(module_name: str, obj: Any) -> str:
    """The whole source file of ``module_name``; the object's own source when there is no file
    (a notebook cell), its name when there is no source at all."""
    module = sys.modules.get(module_name)
    try:
        return Path(inspect.getsourcefile(module)).read_text(errors="replace")
    except (OSError, TypeError):
        pass
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return getattr(obj, "__qualname__", repr(obj))


def _batches(loaders):
    """Every batch of a validation loader, or of each loader in a list/dict of them."""
    if isinstance(loaders, Mapping):
        loaders = list(loaders.values())
    if not isinstance(loaders, (list, tuple)):
        loaders = [loaders]
    for loader in loaders:
        yield from loader


#: Values that are settings or data, not code or live objects.
_PLAIN = (int, float, str, bool, type(None), Path)
_DATA = (*_PLAIN, bytes, torch.Tensor, np.ndarray)


def _is_plain(value, kinds: tuple[type, ...] = _PLAIN) -> bool:
    """A value of ``kinds``, or a list or tuple of them."""
    return isinstance(value, kinds) or (
        isinstance(value, (list, tuple)) and all(isinstance(v, kinds) for v in value)
    )


def _plain_settings(obj, private: bool = False, kinds: tuple[type, ...] = _PLAIN) -> dict[str, Any]:
    """Public attributes of plain types (numbers, strings, flags, paths, lists of them). For a
    shared callback's settings, ``private`` ones too (Lightning keeps settings such as SWA's
    learning rates there) and ``kinds`` with tensors."""
    out = {}
    for name, value in sorted(vars(obj).items()):
        if name.startswith("_") and not private:
            continue
        if _is_plain(value, kinds):
            out[name] = value
        elif isinstance(value, Mapping) and all(isinstance(v, kinds) for v in value.values()):
            out[name] = dict(value)
    return out


def digest(obj) -> str:
    """A short hash of ``obj`` (plain values, containers, tensors, arrays, code)."""
    h = hashlib.blake2b(digest_size=16)
    _update(h, obj)
    return h.hexdigest()


def _update(h, obj) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"tensor{t.dtype}{tuple(t.shape)}".encode())
        h.update((t.float() if t.dtype == torch.bfloat16 else t).numpy().tobytes())
    elif isinstance(obj, np.ndarray):
        h.update(f"array{obj.dtype}{obj.shape}".encode())
        h.update(np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, Mapping):
        h.update(b"{")
        for k in sorted(obj, key=str):
            h.update(repr(k).encode())
            _update(h, obj[k])
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for x in obj:
            _update(h, x)
        h.update(b"]")
    elif isinstance(obj, (str, bytes, int, float, bool, type(None), Path)):
        h.update(repr(obj).encode())
    elif isinstance(obj, types.FunctionType):  # a function hyperparameter (an activation, a lambda)
        # its compiled code and the values it reads: stable across processes, unlike its repr
        # (an address), and changed by an edit, unlike its pickle (a reference by name)
        h.update(f"function{obj.__module__}.{obj.__qualname__}".encode())
        _update_code(h, obj.__code__)
        closed = [c.cell_contents for c in obj.__closure__ or () if _filled(c)]
        named = [obj.__globals__[n] for n in obj.__code__.co_names if n in obj.__globals__]
        _update(h, [v for v in (*(obj.__defaults__ or ()), *closed, *named) if _is_plain(v, _DATA)])
    else:  # e.g. an image: its pickle holds the contents, its repr may hold only an address
        try:
            h.update(pickle.dumps(obj, protocol=4))
        except (pickle.PicklingError, TypeError, AttributeError):
            h.update(repr(obj).encode())


def _update_code(h, code: types.CodeType) -> None:
    """A code object's instructions, names and constants (nested functions' code included)."""
    h.update(code.co_code)
    h.update(repr((code.co_names, code.co_varnames, code.co_argcount)).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _update_code(h, const)
        else:
            h.update(repr(const).encode())


def _filled(cell) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - raises ValueError for an empty cell
    except ValueError:
        return False
    return True
