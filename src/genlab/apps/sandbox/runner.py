"""The parent side of the sandbox: start the child, enforce the wall clock, read its one-line result."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import RestrictedPython

from genlab.apps.sandbox.probe import probe_layers
from genlab.errors import GenlabError, InvalidValueError

CHILD = Path(__file__).with_name("child.py")
# Pure, side-effect-free modules a model's program may import (RestrictedPython also refuses their
# `_`-names, and a module reached through one of them — statistics.sys, fractions.operator — is refused).
DEFAULT_ALLOWED_IMPORTS = (
    "bisect", "cmath", "collections", "collections.abc", "datetime", "decimal", "fractions", "functools",
    "heapq", "itertools", "json", "math", "random", "re", "statistics", "string", "textwrap",
)
MAX_SOURCE_CHARS = 200_000
# A root parent runs each child as a fresh uid/gid from this range: no file, process or other sandbox has it.
SANDBOX_IDS = range(2_000_000_000, 2_100_000_000)


class SandboxError(GenlabError):
    """The sandbox could not be used (a missing file, a bad limit) — not a program that failed inside it."""


@dataclass(frozen=True)
class SandboxLimits:
    wall_seconds: float = 10.0  # parent-side clock: the whole process group is killed when it runs out
    cpu_seconds: int = 5  # RLIMIT_CPU (whole seconds): SIGXCPU, then SIGKILL one second later
    memory_mb: int = 256  # RLIMIT_AS; the interpreter with RestrictedPython takes ~30 MB of it
    max_output_chars: int = 20_000  # printed text past this stops the program
    max_file_mb: int = 4  # RLIMIT_FSIZE for files the program writes in its folder
    allowed_imports: tuple[str, ...] = DEFAULT_ALLOWED_IMPORTS
    read_paths: tuple[str, ...] = ()  # extra files or folders the program may read (its folder always)
    isolate_network: bool = True  # a fresh, empty network namespace when the kernel allows it
    # Run model code even where the kernel refuses a layer (--unsafe-sandbox); the result names what is missing.
    allow_unsafe: bool = False
    # The Python layers: RestrictedPython's compile step and the audit hook. Only tests turn them off, to
    # prove that the kernel layers hold on their own.
    restrict_source: bool = True
    audit_hook: bool = True

    def __post_init__(self) -> None:
        for name in ("wall_seconds", "cpu_seconds", "memory_mb", "max_output_chars", "max_file_mb"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value <= 0:
                raise InvalidValueError(f"sandbox limit {name}={value!r} is not allowed: it must be a positive number.")
        if self.memory_mb < 64:
            raise InvalidValueError(
                f"sandbox limit memory_mb={self.memory_mb} is not allowed: the interpreter alone needs 64 MB."
            )


@dataclass
class SandboxResult:
    ok: bool
    stdout: str
    error: str | None  # one sentence: the program's exception, the limit reached, or what was refused
    kind: str | None = None  # None, "exception", "refused", "timeout", "cpu", "memory", "output", "crash"
    seconds: float = 0.0
    network_isolated: bool = False
    limits: dict = field(default_factory=dict)
    layers: dict = field(default_factory=dict)  # kernel layer -> what was applied
    missing_layers: dict = field(default_factory=dict)  # kernel layer -> why not (only with allow_unsafe)

    def to_dict(self) -> dict:
        """The CLI's ``--json`` shape: ``{"ok", "stdout", "error"}``."""
        return {"ok": self.ok, "stdout": self.stdout, "error": self.error}

    def record(self) -> dict:
        """Everything, for lineage and transcripts."""
        return asdict(self)


def _stdlib_roots() -> list[str]:
    paths = sysconfig.get_paths()
    return sorted({os.path.realpath(paths[key]) for key in ("stdlib", "platstdlib") if key in paths})


def _restrictedpython_path() -> str:
    return str(Path(RestrictedPython.__file__).resolve().parents[1])


def run_code(source: str, limits: SandboxLimits | None = None) -> SandboxResult:
    """Run ``source`` in a fresh sandboxed process; its printed text is ``stdout``.

    A program that fails (its own exception, a refusal, a limit) gives ``ok=False`` and a reason; a
    sandbox that cannot start, or a kernel that refuses one of its layers (unless ``limits.allow_unsafe``),
    raises :class:`SandboxError`.
    """
    limits = limits or SandboxLimits()
    if not isinstance(source, str):
        raise SandboxError("the sandbox runs Python source text.")
    if len(source) > MAX_SOURCE_CHARS:
        raise SandboxError(f"the program has {len(source)} characters; the sandbox takes at most {MAX_SOURCE_CHARS}.")
    kernel_layers = probe_layers()
    if kernel_layers.missing and not limits.allow_unsafe:
        raise SandboxError(kernel_layers.refusal())
    sandbox_id = SANDBOX_IDS[secrets.randbelow(len(SANDBOX_IDS))] if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="genlab-sandbox-")).resolve()
    work = root / "work"  # the program's folder; its result files sit beside it, out of its reach
    work.mkdir(mode=0o700)
    if sandbox_id is not None:  # the child's unused uid owns its folder and nothing else; root/ is search-only
        os.chown(work, sandbox_id, sandbox_id)
        os.chmod(root, 0o711)
    request = {
        "source": source,
        "restrictedpython_path": _restrictedpython_path(),
        "read_roots": [*_stdlib_roots(), *(os.path.realpath(p) for p in limits.read_paths)],
        "sandbox_id": sandbox_id,
        **{f.name: getattr(limits, f.name) for f in fields(limits) if f.name not in ("read_paths", "wall_seconds")},
    }
    request["allowed_imports"] = list(limits.allowed_imports)
    started = time.monotonic()
    try:
        with _private_file(root / "result") as out, _private_file(root / "stderr") as err:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", str(CHILD)],
                stdin=subprocess.PIPE, stdout=out, stderr=err, cwd=work,
                env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},  # no API keys or tokens reach the program
                start_new_session=True, close_fds=True,
            )  # fmt: skip
            timed_out = False
            try:
                process.communicate(json.dumps(request).encode(), timeout=limits.wall_seconds)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(process.pid)  # stray children too, on every path
                process.wait()
            seconds = time.monotonic() - started
            out.seek(0)
            raw = out.read(16 * limits.max_output_chars + 65536)
            err.seek(0)
            stderr = err.read(4096).decode("utf-8", "replace")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result = _parse(raw, process.returncode, timed_out, stderr, limits)
    if result.kind == "kernel":  # the child found a layer refused that the probe did not see
        raise SandboxError(result.error or "the kernel refused a sandbox layer.")
    result.seconds = round(seconds, 3)
    result.limits = {k: v for k, v in asdict(limits).items() if k != "allowed_imports"}
    return result


def run_file(path: str | Path, limits: SandboxLimits | None = None) -> SandboxResult:
    path = Path(path).expanduser()
    if not path.is_file():
        raise SandboxError(f"no such Python file: {path}.")
    try:
        source = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SandboxError(f"{path} is not UTF-8 text.") from None
    return run_code(source, limits)


def _private_file(path: Path):
    """Open ``path`` for the parent only (0600): the child, another uid, cannot open it by name."""
    return os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), "w+b")


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _parse(raw: bytes, returncode: int, timed_out: bool, stderr: str, limits: SandboxLimits) -> SandboxResult:
    line = raw.split(b"\n", 1)[0]
    try:
        reported = json.loads(line.decode("utf-8", "replace")) if line else None
    except json.JSONDecodeError:
        reported = None
    if isinstance(reported, dict) and "ok" in reported:
        return SandboxResult(
            ok=bool(reported["ok"]), stdout=str(reported.get("stdout") or ""), error=reported.get("error"),
            kind=reported.get("kind"), network_isolated=bool(reported.get("network_isolated")),
            layers=dict(reported.get("layers") or {}), missing_layers=dict(reported.get("missing_layers") or {}),
        )  # fmt: skip
    if timed_out:
        error, kind = f"wall-clock limit of {limits.wall_seconds:g} s reached (the process group was killed).", "timeout"
    elif returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        error, kind = f"CPU time limit of {limits.cpu_seconds} s reached (the process was killed).", "cpu"
    else:
        last = next((text for text in reversed(stderr.strip().splitlines()) if text.strip()), "no message")
        if "MemoryError" in stderr:
            error, kind = f"memory limit of {limits.memory_mb} MB reached (MemoryError).", "memory"
        else:
            error, kind = f"the sandboxed process ended without a result (exit code {returncode}): {last}", "crash"
    return SandboxResult(ok=False, stdout="", error=error, kind=kind)
