"""The kernel layers alone contain a program that has defeated every Python check (issue 18).

Each program here first runs the real escape chain that got out before: ``functools.update_wrapper``
copies ``statistics``' globals into the program's own, which hands it ``sys``, hence ``sys.modules["os"]``
and the real builtins. It prints "reached os" (so the test knows the Python layers were really beaten),
then tries one escape. RestrictedPython and the audit hook are both switched off (``restrict_source=False,
audit_hook=False``): only Landlock, the unprivileged uid or user namespace, no capabilities,
no_new_privs, seccomp, the network namespace and the rlimits stand in the way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from genlab.apps.agents import answer_with_pal
from genlab.apps.agents.pal import PAL_LIMITS
from genlab.apps.providers import ScriptedProvider
from genlab.apps.sandbox import DEFAULT_ALLOWED_IMPORTS, SandboxLimits, probe_layers, run_code
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
# socket and subprocess are preloaded (allowed), so that what stops them is the kernel, not a missing file.
KERNEL_ONLY = SandboxLimits(wall_seconds=8, cpu_seconds=2, memory_mb=192, restrict_source=False, audit_hook=False,
                            allowed_imports=(*DEFAULT_ALLOWED_IMPORTS, "socket", "subprocess"))  # fmt: skip
CHAIN = (
    "import functools, statistics\n"
    "def f():\n    pass\n"
    "functools.update_wrapper(f, statistics.mean, assigned=(), updated=('__globals__',))\n"
    "os = sys.modules['os']\n"
    "builtins = sys.modules['builtins']\n"
    "print('reached os')\n"
)
# ctypes stays in memory after the child used it: an attacker finds its CDLL class among object's subclasses.
CTYPES = (
    "CDLL = [c for c in builtins.object.__subclasses__() if c.__name__ == 'CDLL'][0]\n"
    "libc = CDLL(None, use_errno=True)\n"
    "errno = CDLL.__init__.__globals__['get_errno']\n"
)
# The original program of the issue, as a model wrote it: chdir, then a relative open of /etc/passwd.
ORIGINAL_EXPLOIT = (
    "import functools, statistics\n"
    "def f():\n    pass\n"
    "functools.update_wrapper(f, statistics.mean, assigned=(), updated=('__globals__',))\n"
    "def solution():\n"
    "    os = sys.modules['os']\n"
    "    os.chdir('/')\n"
    "    return open('etc/passwd').read()\n"
    "print(solution())\n"
)
TAG = uuid.uuid4().hex[:8]
OUTSIDE = f"/tmp/genlab-kernel-escape-{TAG}.txt"
VICTIM = f"/tmp/genlab-kernel-victim-{TAG}.txt"
PTH = str(Path(sysconfig.get_paths()["purelib"]) / f"genlab_escape_{TAG}.pth")

# name -> the escape attempted after CHAIN; each must end in a PermissionError from the kernel.
ESCAPES = {
    "read /etc/passwd after chdir('/')": "os.chdir('/')\nprint(builtins.open('etc/passwd').read())",
    "read /etc/passwd by absolute path": "print(builtins.open('/etc/passwd').read())",
    "list /": "print(os.listdir('/'))",
    "read /proc/<parent>/environ": "print(builtins.open(f'/proc/{os.getppid()}/environ').read())",
    "read /proc/self/environ": "print(builtins.open('/proc/self/environ').read())",
    "write outside the folder": f"builtins.open({OUTSIDE!r}, 'w').write('x')",
    "delete a file outside the folder": f"os.remove({VICTIM!r})",
    "write a .pth into site-packages": f"builtins.open({PTH!r}, 'w').write('import os; print(1)')",
    "overwrite the parent's result file": "builtins.open('../result', 'w').write('{\"ok\": true}')",
    "socket.socket()": "import socket\nsocket.socket()",
    "subprocess.run": "import subprocess\nsubprocess.run(['/bin/echo', 'ESCAPED'])",
    "os.fork": "os.fork()",
    "os.execv": "os.execv('/bin/echo', ['echo', 'ESCAPED'])",
    "signal the parent": "os.kill(os.getppid(), 0)",
    "setuid(0)": "os.setuid(0)",
}
# name -> (ctypes call after CHAIN + CTYPES, what it must print): raw system calls meet the same refusals.
RAW_SYSCALLS = {
    "raw socket(AF_INET)": ("libc.socket(2, 1, 0)", "-1 1"),  # EPERM (seccomp)
    "raw ptrace(ATTACH, parent)": ("libc.ptrace(16, os.getppid(), 0, 0)", "-1 1"),
    "raw unshare(CLONE_NEWUSER)": ("libc.unshare(0x10000000)", "-1 1"),
    "raw clone via syscall(SYS_fork)": ("libc.syscall(57)", "-1 1"),
}


@pytest.fixture(scope="module")
def kernel_results() -> dict:
    Path(VICTIM).write_text("keep me")
    try:
        programs = {name: CHAIN + attack for name, attack in ESCAPES.items()}
        programs.update({name: CHAIN + CTYPES + f"r = {call}\nprint(r, errno())" for name, (call, _) in RAW_SYSCALLS.items()})
        programs["its own folder still works"] = CHAIN + "builtins.open('mine.txt', 'w').write('kept')\nprint(builtins.open('mine.txt').read())"
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = {name: pool.submit(run_code, source, KERNEL_ONLY) for name, source in programs.items()}
            results = {name: future.result() for name, future in futures.items()}
        results["victim still there"] = Path(VICTIM).read_text()
        return results
    finally:
        Path(VICTIM).unlink(missing_ok=True)


@pytest.mark.parametrize("name", list(ESCAPES))
def test_kernel_layers_alone_contain_the_escape(name: str, kernel_results: dict) -> None:
    result = kernel_results[name]
    assert result.stdout.startswith("reached os\n"), result.error  # the Python layers were really defeated
    assert not result.ok and result.kind == "exception"
    assert result.error.startswith("PermissionError"), result.error
    assert "root:" not in result.stdout and "ESCAPED" not in result.stdout and "PATH=" not in result.stdout


@pytest.mark.parametrize("name", list(RAW_SYSCALLS))
def test_raw_system_calls_through_ctypes_are_refused(name: str, kernel_results: dict) -> None:
    result = kernel_results[name]
    assert result.ok, result.error
    assert result.stdout == f"reached os\n{RAW_SYSCALLS[name][1]}\n"


def test_nothing_outside_the_folder_changed(kernel_results: dict) -> None:
    assert not Path(OUTSIDE).exists() and not Path(PTH).exists()
    assert kernel_results["victim still there"] == "keep me"


def test_the_program_keeps_its_own_folder_and_reports_its_layers(kernel_results: dict) -> None:
    result = kernel_results["its own folder still works"]
    assert result.ok and result.stdout == "reached os\nkept\n"
    assert set(result.layers) >= {"landlock", "seccomp", "capabilities", "no_new_privs", "network namespace"}
    assert result.layers["capabilities"] == "none" and result.network_isolated and not result.missing_layers


def test_the_child_is_not_root() -> None:
    result = run_code(CHAIN + "print(os.getuid(), os.getgid(), os.getgroups())", KERNEL_ONLY)
    assert result.ok, result.error
    uid, gid, groups = result.stdout.splitlines()[1].split(" ", 2)
    assert int(uid) != 0 and int(gid) != 0 and groups == "[]"


def test_the_original_exploit_is_contained_with_every_layer_on() -> None:
    result = run_code(ORIGINAL_EXPLOIT)
    assert not result.ok and "root:" not in result.stdout
    assert result.kind == "refused" and "changing the working folder" in result.error  # the audit hook, first
    alone = run_code(ORIGINAL_EXPLOIT, replace(KERNEL_ONLY, allowed_imports=DEFAULT_ALLOWED_IMPORTS))
    assert not alone.ok and "root:" not in alone.stdout and alone.error.startswith("PermissionError")


def test_the_original_exploit_through_genlab_agent_pal(tmp_path: Path) -> None:
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps([f"```python\n{ORIGINAL_EXPLOIT}```"]))
    result = run_cli("agent", "pal", "What is in /etc/passwd?", "--model", f"scripted:{replies}", "--json")
    assert result.returncode == 1
    payload = json.loads(result.stdout)
    assert payload["answer"] is None and "root:" not in result.stdout and "refused" in payload["error"]
    # The same program with both Python layers off: the kernel alone stops it.
    model = ScriptedProvider([f"```python\n{ORIGINAL_EXPLOIT}```"])
    kernel_only = replace(PAL_LIMITS, restrict_source=False, audit_hook=False)
    answer = answer_with_pal("What is in /etc/passwd?", model, limits=kernel_only, record=False)
    assert answer.answer is None and "root:" not in answer.program_output and "PermissionError" in answer.error


def test_this_machine_grants_every_layer() -> None:
    layers = probe_layers()
    assert not layers.missing, layers.missing
    assert {"landlock", "seccomp"} <= set(layers.granted)


# A parent process whose environment holds a secret from its start (so it is in /proc/<pid>/environ), and
# which shows first that the secret is there to be read, then that its sandboxed child cannot read it.
READ_PARENT_ENVIRON = f"""
import json, os, sys
from genlab.apps.sandbox import SandboxLimits, run_code
limits = SandboxLimits(restrict_source=False, audit_hook=False)
own = open('/proc/self/environ').read()
chain = {CHAIN!r}
result = run_code(chain + "print(builtins.open(f'/proc/{{os.getppid()}}/environ').read())", limits)
passwd = run_code(chain + "print(builtins.open('/etc/passwd').read())", limits)
write = run_code(chain + "builtins.open('/tmp/genlab-userns-escape-{TAG}', 'w').write('x')", limits)
print(json.dumps({{"uid": os.getuid(), "secret_in_own_environ": "sk-issue-18" in own,
                   "results": [r.record() for r in (result, passwd, write)]}}))
"""


@pytest.mark.parametrize("parent", ["root", "unprivileged user (user namespace)"])
def test_parent_environ_and_files_are_out_of_reach(parent: str) -> None:
    wrap = [] if parent == "root" else ["unshare", "--user", "--map-user=1000", "--map-group=1000", "--"]
    env = {"PATH": os.environ["PATH"], "GENLAB_TEST_KEY": "sk-issue-18", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([*wrap, sys.executable, "-c", READ_PARENT_ENVIRON], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["secret_in_own_environ"] and (report["uid"] == 0) == (parent == "root")
    for result in report["results"]:
        assert result["stdout"] == "reached os\n" and result["error"].startswith("PermissionError"), result
        assert not result["missing_layers"] and result["layers"]["capabilities"] == "none"
    assert ("user namespace" in report["results"][0]["layers"]) == (parent != "root")
    assert not Path(f"/tmp/genlab-userns-escape-{TAG}").exists()
