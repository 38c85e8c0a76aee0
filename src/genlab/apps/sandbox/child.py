"""The sandboxed side: run as ``python -I -S -B child.py`` with a JSON request on stdin.

This file imports nothing from genlab (the child must start fast and small) but its sibling
``kernel.py``, loaded by path; it runs in a fresh process group, in a fresh temporary folder, with an
empty environment. In order it:

1. reads the request (source, limits, allowed imports, readable roots) from stdin;
2. imports RestrictedPython, preloads the allowed modules (so no import needs the disk later) and
   compiles the program with RestrictedPython (no ``_``-prefixed names or attributes, no frame or
   traceback internals);
3. confines itself for good with the kernel's layers (:func:`kernel.confine`): network namespace,
   an unprivileged uid or user namespace, no capabilities, rlimits (CPU, address space, processes,
   file size, open files, no core), ``no_new_privs``, Landlock, seccomp; a layer the kernel refuses
   ends the run with kind ``"kernel"`` unless the request allows running unsafe;
4. installs an audit hook (PEP 578) refusing sockets, processes, native code, signals, limit changes,
   ``chdir``, reads outside the allowed roots and writes outside the work folder; a refusal ends the
   run at once;
5. runs the program with guarded builtins: an import allow-list, a getattr that also refuses modules
   outside the allow-list, an ``open`` confined to the work folder, and ``print`` into a capped buffer;
6. writes one JSON line ``{"ok", "stdout", "error", "kind", "layers", ...}`` to fd 1 and exits with
   ``os._exit``.

The result is written by :func:`finish`, which leaves with ``os._exit``: no ``try``/``except`` in the
program can swallow an output-limit stop or an audit refusal.
"""

import json
import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kernel  # noqa: E402  (the sibling file: python -I puts no script folder on sys.path)

del sys.path[0]

# The kernel layers applied, reported with every result.
STATE = {"network_isolated": False, "layers": {}, "missing_layers": {}}


def finish(result, code=0, _dumps=json.dumps, _write=os.write, _exit=os._exit, _state=STATE):
    result.update(_state)
    data = _dumps(result, ensure_ascii=False).encode("utf-8", "replace") + b"\n"
    while data:
        data = data[_write(1, data):]
    _exit(code)


def refuse(kind, message):
    finish({"ok": False, "stdout": OUTPUT(), "error": message, "kind": kind}, 1)


class Output:
    """Where ``print`` writes: a buffer that stops the run when it passes the cap."""

    def __init__(self, cap):
        self.parts, self.size, self.cap = [], 0, cap

    def write(self, text):
        if type(text) is not str:
            raise TypeError("print() writes text")
        room = self.cap - self.size
        if len(text) > room:
            self.parts.append(text[:room])
            self.size = self.cap
            finish({"ok": False, "stdout": self(), "kind": "output",
                    "error": f"output limit of {self.cap} characters reached (the program was stopped)."}, 1)
        self.parts.append(text)
        self.size += len(text)

    def flush(self):
        pass

    def __call__(self):
        return "".join(self.parts)


OUTPUT = Output(0)


def normalise(path, cwd, _type=type, _str=str, _bytes=bytes):
    """An absolute, ``..``-free path by string operations only (nothing a program could patch)."""
    if _type(path) is _bytes:
        path = path.decode("utf-8", "surrogateescape")
    path = _str(path)
    if not path.startswith("/"):
        path = cwd + "/" + path
    parts = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


def inside(path, roots):
    return any(path == root or path.startswith(root + "/") for root in roots)


# Audit events that end the run, by prefix, with the reason given to the user.
REFUSED_EVENTS = (
    ("socket.", "network access (socket) is not allowed in the sandbox"),
    ("subprocess.", "starting processes is not allowed in the sandbox"),
    ("os.system", "starting processes (os.system) is not allowed in the sandbox"),
    ("os.exec", "starting processes (os.exec*) is not allowed in the sandbox"),
    ("os.posix_spawn", "starting processes (posix_spawn) is not allowed in the sandbox"),
    ("os.spawn", "starting processes (os.spawn*) is not allowed in the sandbox"),
    ("os.fork", "forking is not allowed in the sandbox"),
    ("pty.", "starting processes (pty) is not allowed in the sandbox"),
    ("ctypes.", "native code (ctypes) is not allowed in the sandbox"),
    ("os.kill", "sending signals is not allowed in the sandbox"),
    ("signal.", "signals are not allowed in the sandbox"),
    ("resource.", "changing resource limits is not allowed in the sandbox"),
    ("os.chdir", "changing the working folder is not allowed in the sandbox"),
    ("sys.addaudithook", "adding audit hooks is not allowed in the sandbox"),
    ("code.__new__", "building code objects is not allowed in the sandbox"),
    ("gc.get_", "walking the heap (gc) is not allowed in the sandbox"),
    ("sys._current_frames", "reading other frames is not allowed in the sandbox"),
    ("mmap.", "memory maps are not allowed in the sandbox"),
    ("os.symlink", "links are not allowed in the sandbox"),
    ("os.link", "links are not allowed in the sandbox"),
    ("os.chown", "changing owners is not allowed in the sandbox"),
    ("sqlite3.", "databases are not allowed in the sandbox"),
    ("webbrowser.", "opening a browser is not allowed in the sandbox"),
)
# File events whose path arguments must lie in the work folder.
WORK_FOLDER_EVENTS = frozenset({"os.mkdir", "os.remove", "os.rmdir", "os.rename", "os.chmod", "os.truncate",
                                "os.utime", "shutil.rmtree", "shutil.copyfile", "shutil.move"})
# Modules whose first import ends the run, whatever imports them (the second line behind the allow-list).
REFUSED_IMPORTS = frozenset({
    "os", "posix", "subprocess", "_posixsubprocess", "socket", "_socket", "ssl", "_ssl", "ctypes", "_ctypes",
    "multiprocessing", "_multiprocessing", "pty", "fcntl", "mmap", "resource", "signal", "shutil", "asyncio",
    "select", "selectors", "urllib", "http", "ftplib", "smtplib", "pickle", "_pickle", "marshal", "gc",
    "threading", "_thread", "tempfile", "glob", "sqlite3", "webbrowser", "code", "pdb", "inspect", "runpy",
})
# Modules C code of an allowed module imports lazily through the caller's builtins: datetime.strptime
# imports _strptime, and strftime (so format(date, "%Y")) imports time. A program cannot name _strptime
# (RestrictedPython refuses "_" names); it may import time, whose clocks and sleep are harmless here.
INTERNAL_HELPERS = frozenset({"_strptime", "time"})
# Codecs loaded lazily from the stdlib on first use, preloaded: a root parent's child runs as an unused
# uid, which may not be able to read a stdlib under a private home (pyenv in /root).
PRELOADED_CODECS = ("ascii", "latin_1", "utf_16", "utf_32", "cp1252", "idna", "unicode_escape", "raw_unicode_escape")
FUNCTION_INTERNALS = frozenset({"__code__", "__defaults__", "__kwdefaults__", "__globals__", "__closure__"})


def install_audit_hook(work, read_roots, cwd):
    """Refuse, for good, what a program must never do, whichever layer it got past."""
    write_roots = (work,)
    read_roots = tuple(read_roots) + write_roots

    def hook(event, args, _refused=REFUSED_EVENTS, _imports=REFUSED_IMPORTS, _internals=FUNCTION_INTERNALS,
             _work_events=WORK_FOLDER_EVENTS, _normalise=normalise, _inside=inside, _refuse=refuse,
             _reads=read_roots, _writes=write_roots, _cwd=cwd, _type=type, _int=int, _str=str, _bytes=bytes,
             _error=PermissionError, _flags=os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND):
        reason = None
        if event == "open":
            path, mode, flags = args
            if _type(path) is _int:
                return
            where = _normalise(path, _cwd)
            writing = (mode is not None and any(c in mode for c in "wax+")) or (
                mode is None and _type(flags) is _int and flags & _flags)
            if writing and not _inside(where, _writes):
                reason = f"writing {where} is not allowed: the sandbox writes only inside its temporary folder"
            elif not writing and not _inside(where, _reads):
                reason = f"reading {where} is not allowed: the sandbox reads only its temporary folder"
        elif event == "import":
            name = args[0]
            if _type(name) is _str and name.partition(".")[0] in _imports:
                reason = f"importing {name} is not allowed in the sandbox"
        elif event in ("os.listdir", "os.scandir"):
            path = args[0] if args and args[0] is not None else "."
            if _type(path) in (_str, _bytes) and not _inside(_normalise(path, _cwd), _reads):
                reason = f"listing {_normalise(path, _cwd)} is not allowed in the sandbox"
        elif event in _work_events:
            for arg in args:
                if _type(arg) in (_str, _bytes) and not _inside(_normalise(arg, _cwd), _writes):
                    reason = f"{event} on {_normalise(arg, _cwd)} is not allowed outside the sandbox's folder"
        elif event == "object.__setattr__" and len(args) > 1 and args[1] in _internals:
            reason = f"changing a function's {args[1]} is not allowed in the sandbox"
        else:
            for prefix, message in _refused:
                if event.startswith(prefix):
                    reason = message
                    break
        if reason is not None:
            try:
                _refuse("refused", f"refused: {reason}.")
            finally:
                raise _error(reason)  # reached only if finishing was sabotaged: the action stays refused

    sys.addaudithook(hook)


def confine(request, work):
    """Apply the kernel's layers (see :func:`kernel.confine`), or end the run if the kernel refuses one."""
    try:
        granted, missing = kernel.confine(
            work, request["read_roots"], request["sandbox_id"], request["isolate_network"], request["allow_unsafe"],
            lambda: set_limits(request),
        )  # fmt: skip
    except kernel.LayerRefused as error:
        finish({"ok": False, "stdout": "", "kind": "kernel",
                "error": f"the sandbox refuses to run model code: the kernel refused {error}; pass --unsafe-sandbox "
                         "to run it with only the layers that remain."}, 1)  # fmt: skip
    STATE.update(network_isolated="network namespace" in granted, layers=granted, missing_layers=missing)
    for name in [m for m in sys.modules if m in ("kernel", "ctypes") or m.startswith("ctypes.")]:
        del sys.modules[name]  # out of sys.modules' reach; the kernel layers hold whatever the program finds


def set_limits(request):
    mb = 1024 * 1024
    cpu = int(request["cpu_seconds"])
    output_bytes = 8 * int(request["max_output_chars"]) + 65536  # the result line itself goes to a file
    for limit, soft, hard in (
        (resource.RLIMIT_CPU, cpu, cpu + 1),  # soft: SIGXCPU ends the process; hard: SIGKILL
        (resource.RLIMIT_AS, int(request["memory_mb"]) * mb, int(request["memory_mb"]) * mb),
        (resource.RLIMIT_FSIZE, max(int(request["max_file_mb"]) * mb, output_bytes), None),
        (resource.RLIMIT_NPROC, 0, 0),  # no new processes (root is exempt: the audit hook still refuses)
        (resource.RLIMIT_NOFILE, 32, 32),
        (resource.RLIMIT_CORE, 0, 0),
    ):
        resource.setrlimit(limit, (soft, soft if hard is None else hard))


def main():
    request = json.loads(sys.stdin.buffer.read(16 * 1024 * 1024))
    sys.path.insert(0, request["restrictedpython_path"])
    import builtins
    import importlib
    import operator
    import types

    from RestrictedPython import compile_restricted_exec
    from RestrictedPython.Guards import (
        full_write_guard, guarded_iter_unpack_sequence, guarded_unpack_sequence, safe_builtins,
        safer_getattr_raise,
    )

    global OUTPUT
    OUTPUT = Output(int(request["max_output_chars"]))
    allowed = frozenset(request["allowed_imports"])
    for name in sorted(allowed | INTERNAL_HELPERS):
        importlib.import_module(name)
    for codec in PRELOADED_CODECS:
        "".encode(codec)
    work = os.getcwd()
    module_type = types.ModuleType

    def allowed_module(module):
        name = module.__name__
        return name in allowed or any(name.startswith(a + ".") for a in allowed)

    def guarded_getattr(obj, name, *default):
        try:
            value = safer_getattr_raise(obj, name)
        except AttributeError:
            if default:
                return default[0]
            raise
        if isinstance(value, module_type) and not allowed_module(value):
            raise AttributeError(f"{name!r} is the module {value.__name__!r}, which is not allowed in the sandbox")
        return value

    real_import = builtins.__import__

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level:
            raise ImportError("relative imports are not allowed in the sandbox")
        if name not in allowed and name not in INTERNAL_HELPERS:
            shown = ", ".join(sorted(allowed))
            raise ImportError(f"import of {name!r} is not allowed in the sandbox; allowed modules: {shown}")
        module = real_import(name, globals, locals, fromlist, 0)
        for item in fromlist or ():
            if item == "*" or item.startswith("_"):
                raise ImportError(f"'from {name} import {item}' is not allowed in the sandbox")
            guarded_getattr(module, item)
            if name == "string" and item == "Formatter":
                raise ImportError("string.Formatter is not safe (it reads any attribute)")
        return module

    read_roots = [normalise(p, work) for p in request["read_roots"]]

    def guarded_open(file, mode="r", *args, **kwargs):
        if type(file) is not str:
            raise TypeError("open() takes a file name in the sandbox")
        where = os.path.realpath(os.path.join(work, file))
        writing = any(c in mode for c in "wax+")
        if not inside(where, [work] + ([] if writing else read_roots)):
            verb = "writing" if writing else "reading"
            raise PermissionError(f"{verb} {file} is not allowed: the sandbox has only its temporary folder")
        return open(where, mode, *args, **kwargs)

    def sandbox_print(*objects, **kwargs):
        if kwargs.get("file") is None:
            kwargs["file"] = OUTPUT
        print(*objects, **kwargs)

    class PrintTarget:  # RestrictedPython rewrites print(...) to _print_(_getattr_)._call_print(...)
        def __init__(self, _getattr_=None):
            pass

        def _call_print(self, *objects, **kwargs):
            sandbox_print(*objects, **kwargs)

        def __call__(self):
            return OUTPUT()

    inplace = {"+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
               "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow, "<<=": operator.ilshift,
               ">>=": operator.irshift, "&=": operator.iand, "|=": operator.ior, "^=": operator.ixor,
               "@=": operator.imatmul}

    def inplacevar(op, x, y):
        return inplace[op](x, y)

    safe = dict(safe_builtins)
    for name in ("min", "max", "sum", "sorted", "enumerate", "zip", "map", "filter", "reversed", "any", "all",
                 "list", "dict", "tuple", "set", "frozenset", "iter", "next", "format", "bytes", "bin",
                 "classmethod", "staticmethod", "property", "StopIteration", "ascii", "RecursionError"):
        safe[name] = getattr(builtins, name)
    safe.update({"__import__": guarded_import, "getattr": guarded_getattr, "open": guarded_open,
                 "print": sandbox_print, "hasattr": lambda obj, name: guarded_getattr(obj, name, _MISSING) is not _MISSING})
    namespace = {
        "__builtins__": safe, "__name__": "__sandbox__", "__metaclass__": type,
        "_getattr_": guarded_getattr, "_getitem_": lambda obj, key: obj[key], "_getiter_": iter,
        "_write_": full_write_guard, "_inplacevar_": inplacevar, "_print_": PrintTarget,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence, "_unpack_sequence_": guarded_unpack_sequence,
        "_apply_": lambda function, *args, **kwargs: function(*args, **kwargs),
    }

    source = request["source"]
    if request["restrict_source"]:
        compiled = compile_restricted_exec(source, filename="<sandbox>")
        if compiled.errors:
            finish({"ok": False, "stdout": "", "kind": "refused",
                    "error": "refused by the restricted compiler: " + "; ".join(compiled.errors)}, 1)
        code = compiled.code
    else:  # tests only: prove that the process layer holds on its own
        try:
            code = compile(source, "<sandbox>", "exec")
        except SyntaxError as error:
            finish({"ok": False, "stdout": "", "kind": "syntax", "error": f"SyntaxError: {error.msg} (line {error.lineno})"}, 1)

    confine(request, work)
    if request["audit_hook"]:  # tests alone turn it off, to show the kernel layers hold on their own
        install_audit_hook(work, read_roots, work)
    try:
        exec(code, namespace)
    except MemoryError:
        refuse("memory", f"memory limit of {request['memory_mb']} MB reached (MemoryError).")
    except RecursionError:
        refuse("exception", "RecursionError: maximum recursion depth exceeded.")
    except BaseException as error:  # the program's own error: its type, message and line
        line = None
        tb = error.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == "<sandbox>":
                line = tb.tb_lineno
            tb = tb.tb_next
        where = f" (line {line})" if line else ""
        message = str(error)
        refuse("exception", f"{type(error).__name__}: {message}{where}" if message else f"{type(error).__name__}{where}")
    finish({"ok": True, "stdout": OUTPUT(), "error": None, "kind": None})


_MISSING = object()

if __name__ == "__main__":
    main()
