"""Data that ships with Python, so the demo and the tests need no download.

- ``pydoc_topics`` (text): Python's own help texts, about 0.45 MB.
- ``stdlib_docs`` (supervised pairs): a standard-library function's or method's signature as the
  prompt, the first paragraph of its docstring as the response; about three thousand pairs,
  the same on every machine with the same Python version.
"""

from __future__ import annotations

import importlib
import inspect
import re
import warnings

TEXTS = ("pydoc_topics",)
PAIRS = ("stdlib_docs",)

#: Pure-Python standard-library modules present from Python 3.10 on, read in this order.
_MODULES = (
    "argparse", "ast", "base64", "bdb", "calendar", "cmd", "code", "codecs", "collections",
    "configparser", "contextlib", "copy", "csv", "dataclasses", "difflib", "dis", "doctest",
    "email.message", "email.utils", "enum", "filecmp", "fileinput", "fnmatch", "fractions",
    "ftplib", "functools", "getopt", "gettext", "glob", "gzip", "heapq", "hmac", "html",
    "html.parser", "http.client", "http.cookies", "imaplib", "inspect", "ipaddress", "json",
    "json.decoder", "json.encoder", "logging", "logging.handlers", "mailbox", "mimetypes",
    "netrc", "ntpath", "numbers", "opcode", "optparse", "os", "pathlib", "pdb", "pickle",
    "pickletools", "pkgutil", "platform", "plistlib", "poplib", "posixpath", "pprint",
    "profile", "pstats", "py_compile", "queue", "quopri", "random", "reprlib", "rlcompleter",
    "sched", "secrets", "selectors", "shelve", "shlex", "shutil", "smtplib", "socket",
    "socketserver", "statistics", "string", "subprocess", "symtable", "tabnanny", "tarfile",
    "tempfile", "textwrap", "threading", "timeit", "tokenize", "trace", "traceback", "types",
    "typing", "unittest.case", "unittest.mock", "urllib.parse", "urllib.request", "uuid",
    "warnings", "wave", "weakref", "webbrowser", "zipfile", "zipimport",
)  # fmt: skip


def builtin_text(name: str = "pydoc_topics") -> list[str]:
    """Documents that ship with Python: ``pydoc_topics`` (English help texts, about 0.45 MB)."""
    if name == "pydoc_topics":
        from pydoc_data.topics import topics

        return [topics[k] for k in sorted(topics)]
    raise ValueError(f"unknown built-in text {name!r}; available: {list(TEXTS)}")


def builtin_pairs(name: str = "stdlib_docs", max_response: int = 400) -> list[dict[str, str]]:
    """``{"prompt", "completion"}`` pairs that ship with Python: ``stdlib_docs`` (see the module).

    A response is the docstring's first paragraph, at most ``max_response`` characters (cut at a
    word); a prompt is ``def module.qualname(signature):`` and a newline.
    """
    if name not in PAIRS:
        raise ValueError(f"unknown built-in pairs {name!r}; available: {list(PAIRS)}")
    pairs, seen = [], set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # importing a deprecated module warns
        for module_name in _MODULES:
            module = importlib.import_module(module_name)
            for qualname, obj in _documented(module):
                key = f"{module_name}.{qualname}"
                text = _first_paragraph(inspect.getdoc(obj) or "", max_response)
                if key in seen or not text:
                    continue
                seen.add(key)
                pairs.append({"prompt": f"def {key}{_signature(obj)}:\n", "completion": text})
    return pairs


def _documented(module) -> list[tuple[str, object]]:
    """The public functions of ``module`` and of its public classes, defined in it, by name."""
    out = []
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj):
            out.append((name, obj))
        elif inspect.isclass(obj):
            out.append((name, obj))
            for attr, member in sorted(vars(obj).items()):
                if not attr.startswith("_") and inspect.isfunction(member):
                    out.append((f"{name}.{attr}", member))
    return out


def _signature(obj) -> str:
    try:
        text = str(inspect.signature(obj))
    except (TypeError, ValueError):  # a class whose signature Python cannot tell
        return "(...)"
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)  # a default's repr with an address: not stable


def _first_paragraph(doc: str, limit: int) -> str:
    para = " ".join(doc.strip().split("\n\n")[0].split())
    if len(para) <= limit:
        return para
    return para[:limit].rsplit(" ", 1)[0] + " ..."
