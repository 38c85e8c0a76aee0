"""A sandbox for model-written Python: ``run_code(source) -> SandboxResult(ok, stdout, error)``.

The boundary is the operating system. A program that defeats every Python-level check (issue 18: a
``functools.update_wrapper`` call copied another module's globals into the program's, which gave it
``sys``, ``sys.modules["os"]`` and the real builtins) still meets the kernel's layers, which it cannot
undo from inside. The Python layers stay in front, to refuse early with a clear sentence.

The kernel layers (:mod:`.kernel`, applied by the child to itself before the program runs; Linux):

- **Landlock** (chosen over a mount namespace: no mounts to build, a few µs per start, and it holds
  across ``chdir`` and ``..``): reads only under the stdlib and ``read_paths``, reads and writes only in
  the run's own folder; ``/proc``, ``/etc``, ``/home``, site-packages writes and every other path refused;
  nothing may be executed; TCP bind/connect refused (ABI 4); signals and abstract UNIX sockets cannot
  reach processes outside the sandbox (ABI 6).
- **An unprivileged identity**: a root parent runs each child as a fresh unused uid/gid (no groups; its
  folder is chowned to it), so file permissions and ``ptrace_may_access`` (``/proc/<pid>/environ``) refuse
  it too; a parent that is not root puts the child in a new user namespace (its own ids mapped to
  themselves), so it holds no capability where the parent lives.
- **No capabilities**: bounding, effective, permitted, inheritable and ambient sets emptied (checked).
- **no_new_privs**: no setuid file or file capability can raise it again (and Landlock needs it).
- **seccomp** (libseccomp): EPERM for fork, vfork, clone, clone3, execve, execveat, ptrace,
  process_vm_*, pidfd_*, socket, socketpair, unshare, setns, mount and the new mount API, bpf,
  perf_event_open, userfaultfd, io_uring, keyrings; signals only to itself; other architectures killed.
- **A network namespace** with only a down loopback; **rlimits** (CPU, address space, file size, open
  files, processes, no core); the parent's **wall clock** kills the process group; an empty environment.

If the kernel refuses a layer (no Landlock, no user namespaces, no seccomp, root without the
capabilities to change ids), :func:`run_code` raises :class:`SandboxError` with one sentence instead of
running with less, unless ``SandboxLimits(allow_unsafe=True)`` (``--unsafe-sandbox`` on ``genlab sandbox
run`` and ``genlab agent pal|react``, which print a warning); the result then names the missing layers.
:func:`probe_layers` (``genlab sandbox layers``) reports what this kernel grants.

Escape classes, and what stops each when RestrictedPython and the audit hook are both off (tests:
``tests/unit/test_sandbox_kernel.py`` runs every row with ``restrict_source=False, audit_hook=False``):

======================================================  ==================================================
Escape                                                  Kernel layer(s) that stop it
======================================================  ==================================================
read outside the folder (``/etc/passwd``, after chdir)  Landlock (no rule grants it); the unused uid (DAC)
list ``/``, other folders                               Landlock (READ_DIR only under the read roots)
write / delete / rename outside the folder              Landlock (write rights only in the folder); uid
a ``.pth`` (or any file) written into site-packages     Landlock; the unused uid cannot write root's files
the parent's result file (``../result``)                Landlock; it is 0600 and owned by the parent
``/proc/<parent>/environ``, ``/proc/self/*``            Landlock (``/proc`` not granted); other uid or user
                                                        namespace (ptrace_may_access refuses)
``socket.socket()``, raw ``socket(2)`` by ctypes        seccomp (EPERM); Landlock TCP rules; netns
subprocess, ``os.fork``, ``os.execv``, raw clone        seccomp (EPERM); Landlock (no EXECUTE);
                                                        RLIMIT_NPROC=0 (not root)
``ptrace`` / ``process_vm_readv`` the parent            seccomp (EPERM); other uid / user namespace
``os.kill(parent)``                                     seccomp (signals only to itself); Landlock signal
                                                        scope; other uid
``setuid(0)``, setuid binaries, new user namespaces     no capabilities; no_new_privs; seccomp (unshare)
removing the filters, raising rlimits                   Landlock and seccomp cannot be undone; no
                                                        CAP_SYS_RESOURCE
CPU, memory, disk, output, time                         RLIMIT_CPU/AS/FSIZE, output cap, wall clock
======================================================  ==================================================

The Python layers in front (same interpreter as the attacker, so filters, not the boundary):

- **RestrictedPython** (Zope's maintained compiler, ``compile_restricted_exec`` and its guards) rewrites
  the program before it runs: names and attributes starting with ``_`` are refused at compile time
  (``__subclasses__``, ``__globals__``, ``__import__``, ``__builtins__``), so are frame and traceback
  internals (``gi_frame``, ``f_globals``, ``tb_frame``); ``str.format`` and ``string.Formatter`` are
  refused (they read attributes); attribute writes go through its ``full_write_guard``. A side effect:
  classes cannot define ``__init__`` — plain functions are what PAL programs use anyway.
- **Hand-written**: the builtins the program sees (an import allow-list, a ``getattr`` that also refuses
  modules reached through an allowed one, such as ``statistics.sys``; an ``open`` confined to the run's
  folder; ``print`` into a capped buffer) and a PEP 578 audit hook refusing sockets, processes, ctypes,
  signals, ``resource.setrlimit``, ``chdir``, new audit hooks, code objects built by hand, gc heap walks,
  links, reads outside the stdlib and the folder, writes outside the folder, and imports of
  os/subprocess/socket/ctypes/... PEP 578 says audit hooks are not a sandbox; issue 18 showed why.
"""

from genlab.apps.sandbox.probe import KernelLayers, probe_layers
from genlab.apps.sandbox.runner import (
    DEFAULT_ALLOWED_IMPORTS, SandboxError, SandboxLimits, SandboxResult, run_code, run_file,
)

__all__ = ["DEFAULT_ALLOWED_IMPORTS", "KernelLayers", "SandboxError", "SandboxLimits", "SandboxResult", "probe_layers",
           "run_code", "run_file"]  # fmt: skip
