"""A kernel that refuses a layer: the sandbox refuses model code, unless --unsafe-sandbox says otherwise, loudly.

The "kernel without Landlock" is real, not a mock: each test starts its process under a seccomp filter
that makes ``landlock_create_ruleset`` fail with ENOSYS (what a kernel built without Landlock answers);
"no user namespaces" is a filter making ``unshare`` fail with EPERM, for a parent that is not root.
The filter is inherited by every process started below it, the sandbox's child included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from genlab.apps.sandbox import kernel

ROOT = Path(__file__).resolve().parents[2]
# argv: SYSCALL ERRNO PYTHON-ARGS...; refuses SYSCALL with ERRNO, then runs python with the rest.
REFUSING = f"""
import ctypes, errno, os, sys
lib = ctypes.CDLL("libseccomp.so.2")
lib.seccomp_init.restype = ctypes.c_void_p
context = ctypes.c_void_p(lib.seccomp_init({kernel.SCMP_ACT_ALLOW}))
number = lib.seccomp_syscall_resolve_name(sys.argv[1].encode())
assert lib.seccomp_rule_add(context, 0x00050000 | getattr(errno, sys.argv[2]), number, 0) == 0
assert lib.seccomp_load(context) == 0
os.execv(sys.executable, [sys.executable, *sys.argv[3:]])
"""
REFUSAL = "the sandbox refuses to run model code: this kernel does not grant landlock"


def refusing(syscall: str, error: str, *args: str, wrap: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``python ARGS`` in a process (and its children) whose ``syscall`` the kernel refuses with ``error``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([*wrap, sys.executable, "-c", REFUSING, syscall, error, *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)  # fmt: skip


def without_landlock(*args: str) -> subprocess.CompletedProcess:
    return refusing("landlock_create_ruleset", "ENOSYS", *args)


def test_run_code_refuses_without_landlock_and_runs_unsafe_only_when_asked() -> None:
    script = (
        "import json\nfrom genlab.apps.sandbox import SandboxError, SandboxLimits, probe_layers, run_code\n"
        "try:\n    run_code('print(1)')\n    refused = None\nexcept SandboxError as error:\n    refused = str(error)\n"
        "unsafe = run_code('print(6 * 7)', SandboxLimits(allow_unsafe=True))\n"
        "print(json.dumps({'refused': refused, 'unsafe': unsafe.record(), 'missing': probe_layers().missing}))\n"
    )
    done = without_landlock("-c", script)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["refused"].startswith(REFUSAL) and "--unsafe-sandbox" in report["refused"]
    assert list(report["missing"]) == ["landlock"]
    unsafe = report["unsafe"]
    assert unsafe["ok"] and unsafe["stdout"] == "42\n"
    assert list(unsafe["missing_layers"]) == ["landlock"] and "seccomp" in unsafe["layers"]  # the rest still applied


def test_the_child_checks_for_itself_when_the_probe_is_wrong() -> None:
    # The parent's probe is made to claim every layer; the child still finds Landlock refused and stops.
    script = (
        "import genlab.apps.sandbox.runner as runner\nfrom genlab.apps.sandbox import KernelLayers, SandboxError\n"
        "runner.probe_layers = lambda: KernelLayers()\n"
        "try:\n    print(runner.run_code('print(1)'))\nexcept SandboxError as error:\n    print('refused:', error)\n"
    )
    done = without_landlock("-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused: the sandbox refuses to run model code: the kernel refused landlock")


def test_cli_sandbox_run_refuses_then_warns_with_unsafe_sandbox(tmp_path: Path) -> None:
    program = tmp_path / "p.py"
    program.write_text("print(6 * 7)\n")
    done = without_landlock("-m", "genlab", "sandbox", "run", str(program))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"error: {REFUSAL}")
    done = without_landlock("-m", "genlab", "sandbox", "run", str(program), "--unsafe-sandbox")
    assert done.returncode == 0 and done.stdout == "42\n", done.stderr
    assert "warning: --unsafe-sandbox: model code will run WITHOUT landlock" in " ".join(done.stderr.split())
    assert "this program ran without landlock" in done.stderr
    done = without_landlock("-m", "genlab", "sandbox", "layers")
    assert done.returncode == 1 and "MISSING  landlock" in done.stdout


def test_cli_agent_pal_and_react_take_unsafe_sandbox(tmp_path: Path) -> None:
    pal = tmp_path / "pal.json"
    pal.write_text(json.dumps(["```python\ndef solution():\n    return 6 * 7\n```"]))
    done = without_landlock("-m", "genlab", "agent", "pal", "q", "--model", f"scripted:{pal}", "--json")
    assert done.returncode == 2 and done.stderr.startswith(f"error: {REFUSAL}")
    done = without_landlock("-m", "genlab", "agent", "pal", "q", "--model", f"scripted:{pal}", "--json", "--unsafe-sandbox")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["answer"] == "42" and "WITHOUT landlock" in done.stderr
    react = tmp_path / "react.json"
    react.write_text(json.dumps([" Compute.\nAction: Calculate[6 * 7]", " Done.\nAction: Finish[42]"]))
    done = without_landlock("-m", "genlab", "agent", "react", "q", "--model", f"scripted:{react}", "--json")
    assert done.returncode == 2 and done.stderr.startswith(f"error: {REFUSAL}")  # the run stops; no tool error
    done = without_landlock("-m", "genlab", "agent", "react", "q", "--model", f"scripted:{react}", "--json",
                            "--unsafe-sandbox")  # fmt: skip
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["steps"][0]["observation"] == "42" and "WITHOUT landlock" in done.stderr


def test_a_parent_that_is_not_root_without_user_namespaces_is_refused() -> None:
    script = (
        "from genlab.apps.sandbox import SandboxError, SandboxLimits, run_code\n"
        "try:\n    run_code('print(1)')\nexcept SandboxError as error:\n    print('refused:', error)\n"
        "print('unsafe:', run_code('print(6 * 7)', SandboxLimits(allow_unsafe=True)).missing_layers)\n"
    )
    as_user = ("unshare", "--user", "--map-user=1000", "--map-group=1000", "--")
    done = refusing("unshare", "EPERM", "-c", script, wrap=as_user)
    assert done.returncode == 0, done.stderr
    refused, unsafe = done.stdout.splitlines()
    assert refused.startswith("refused: the sandbox refuses to run model code: this kernel does not grant user namespace")
    assert unsafe.startswith("unsafe: {'user and network namespaces': 'unshare failed: EPERM")
