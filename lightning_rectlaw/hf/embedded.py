"""Data that ships with Python, so the demo and the tests need no download.

- ``pydoc_topics`` (text): Python's own help texts, about 0.45 MB.
- ``stdlib_docs`` (supervised pairs): a standard-library function's or method's signature as the
  prompt, the first paragraph of its docstring as the response; about three thousand pairs,
  the same on every machine with the same Python version.
"""

from __future__ import annotations

import ast
import functools
import sysconfig
from pathlib import Path

TEXTS = ("pydoc_topics",)
PAIRS = ("stdlib_docs",)

#: Pure-Python standard-library modules present from Python 3.10 on, read in this order.
_MODULES = (
    "argparse", "ast", "asyncio.base_events", "asyncio.events", "asyncio.futures", "asyncio.locks",
    "asyncio.queues", "asyncio.streams", "asyncio.tasks", "asyncio.transports", "base64", "bdb",
    "calendar", "cmd", "code", "codecs", "collections", "configparser", "contextlib", "copy", "csv",
    "dataclasses", "difflib", "dis", "doctest", "email.message", "email.utils", "enum", "filecmp",
    "fileinput", "fnmatch", "fractions", "ftplib", "functools", "getopt", "gettext", "glob", "gzip",
    "heapq", "hmac", "html", "html.parser", "http.client", "http.cookies", "imaplib", "inspect",
    "ipaddress", "json", "json.decoder", "json.encoder", "logging", "logging.handlers", "mailbox",
    "mimetypes", "netrc", "ntpath", "numbers", "opcode", "optparse", "os", "pathlib", "pdb",
    "pickle", "pickletools", "pkgutil", "platform", "plistlib", "poplib", "posixpath", "pprint",
    "profile", "pstats", "py_compile", "queue", "quopri", "random", "reprlib", "rlcompleter",
    "sched", "secrets", "selectors", "shelve", "shlex", "shutil", "smtplib", "socket",
    "socketserver", "statistics", "string", "subprocess", "symtable", "tabnanny", "tarfile",
    "tempfile", "textwrap", "threading", "timeit", "tokenize", "trace", "traceback", "types",
    "typing", "unittest.case", "unittest.mock", "urllib.parse", "urllib.request", "uuid",
    "warnings", "wave", "weakref", "webbrowser", "xml.dom.minidom", "xml.etree.ElementTree",
    "xml.sax.handler", "zipfile", "zipimport", "email.headerregistry", "email.policy",
    "http.server", "http.cookiejar", "logging.config", "multiprocessing.connection",
    "multiprocessing.managers", "multiprocessing.pool", "pydoc", "urllib.robotparser",
)  # fmt: skip


def builtin_text(name: str = "pydoc_topics") -> list[str]:
    """Documents that ship with Python: ``pydoc_topics`` (English help texts, about 0.45 MB)."""
    if name == "pydoc_topics":
        from pydoc_data.topics import topics

        return [topics[k] for k in sorted(topics)]
    raise ValueError(f"unknown built-in text {name!r}; available: {list(TEXTS)}")


def builtin_pairs(name: str = "stdlib_docs", max_response: int = 200) -> list[dict[str, str]]:
    """``{"prompt", "completion"}`` pairs that ship with Python: ``stdlib_docs`` (see the module).

    A response is the docstring's first paragraph, at most ``max_response`` characters (cut at a
    word); a prompt is ``def module.qualname(signature):`` and a newline. Both are read from the
    modules' source files, not from live objects, so nothing imported or patched at run time
    changes them; they are read once per process (the jobs of a sweep share them).
    """
    if name not in PAIRS:
        raise ValueError(f"unknown built-in pairs {name!r}; available: {list(PAIRS)}")
    return [dict(pair) for pair in _stdlib_docs(max_response)]


@functools.cache
def _stdlib_docs(max_response: int) -> tuple[dict[str, str], ...]:
    pairs, seen = [], set()
    for module_name in _MODULES:
        for qualname, node in _documented(module_name):
            key = f"{module_name}.{qualname}"
            text = _first_paragraph(ast.get_docstring(node) or "", max_response)
            if key in seen or not text:
                continue
            seen.add(key)
            pairs.append({"prompt": f"def {key}({_arguments(node)}):\n", "completion": text})
    return tuple(pairs)


def _documented(module_name: str) -> list[tuple[str, ast.FunctionDef | ast.ClassDef]]:
    """The public top-level functions and classes of a module's source, and the classes' methods."""
    base = Path(sysconfig.get_paths()["stdlib"]) / module_name.replace(".", "/")
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) or node.name.startswith("_"):
            continue
        out.append((node.name, node))
        if isinstance(node, ast.ClassDef):
            out += [
                (f"{node.name}.{sub.name}", sub)
                for sub in node.body
                if isinstance(sub, ast.FunctionDef) and not sub.name.startswith("_")
            ]
    return out


def _arguments(node: ast.FunctionDef | ast.ClassDef) -> str:
    """A function's parameters as written; a class's are its ``__init__``'s, without ``self``."""
    if isinstance(node, ast.FunctionDef):
        return ast.unparse(node.args)
    init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    if init is None:
        return ""
    args = ast.unparse(init.args)
    return args.removeprefix("self, ").removeprefix("self")


def _first_paragraph(doc: str, limit: int) -> str:
    para = " ".join(doc.strip().split("\n\n")[0].split())
    if len(para) <= limit:
        return para
    return para[:limit].rsplit(" ", 1)[0] + " ..."
