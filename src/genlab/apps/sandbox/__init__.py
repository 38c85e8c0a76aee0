"""A sandbox for model-written Python: ``run_code(source) -> SandboxResult(ok, stdout, error)``.

What is used, and what is written by hand:

- **RestrictedPython** (Zope's maintained compiler, ``compile_restricted_exec`` and its guards) rewrites
  the program before it runs: names and attributes starting with ``_`` are refused at compile time
  (``__subclasses__``, ``__globals__``, ``__import__``, ``__builtins__``), so are frame and traceback
  internals (``gi_frame``, ``f_globals``, ``tb_frame``); ``str.format`` and ``string.Formatter`` are
  refused (they read attributes); attribute writes go through its ``full_write_guard``. A side effect:
  classes cannot define ``__init__`` — plain functions are what PAL programs use anyway.
- **Hand-written, because no maintained library does it for a CPython child process**: the builtins the
  program sees (an import allow-list, a ``getattr`` that also refuses modules reached through an allowed
  one, such as ``statistics.sys``; an ``open`` confined to the run's folder; ``print`` into a capped
  buffer), the separate process and its limits, and a PEP 578 audit hook as a second line behind the
  compiler. PEP 578 says plainly that audit hooks are not a sandbox on their own; here they back up the
  compiler, and the kernel limits back up both.

The process (see :mod:`.child`): ``sys.executable -I -S -B`` in a new session, an empty environment
(no API keys), a fresh temporary folder as its working directory, a fresh network namespace when the
kernel allows it (so no socket reaches anything even if every Python layer failed), ``RLIMIT_CPU``,
``RLIMIT_AS`` (memory), ``RLIMIT_FSIZE``, ``RLIMIT_NPROC`` (root is exempt from it; the audit hook
refuses fork/exec/spawn anyway), ``RLIMIT_NOFILE``, no core files; the parent kills the whole process
group when the wall clock runs out, and reads at most a capped amount of output.

The audit hook refuses (and ends the run with the reason): sockets, subprocess/os.system/exec/spawn/
fork, ctypes, signals, ``resource.setrlimit`` (root could raise its hard limits), new audit hooks, code
objects built by hand, gc heap walks, links, reads outside the stdlib and the run's folder,
writes outside the run's folder, and imports of os/subprocess/socket/ctypes/... by anything.
"""

from genlab.apps.sandbox.probe import KernelLayers, probe_layers
from genlab.apps.sandbox.runner import (
    DEFAULT_ALLOWED_IMPORTS, SandboxError, SandboxLimits, SandboxResult, run_code, run_file,
)

__all__ = ["DEFAULT_ALLOWED_IMPORTS", "KernelLayers", "SandboxError", "SandboxLimits", "SandboxResult", "probe_layers",
           "run_code", "run_file"]  # fmt: skip
