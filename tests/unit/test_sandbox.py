"""The sandbox: escape attempts all fail safely with a clear reason; allowed programs print the right thing.

Every program runs in its own sandboxed process. To keep the suite fast, the programs of a table are
started together (a few at a time) by one module fixture, and each test reads its own result.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from genlab.apps.sandbox import SandboxLimits, run_code
from genlab.errors import InvalidValueError
from tests.conftest import run_cli

FAST = SandboxLimits(wall_seconds=8, cpu_seconds=1, memory_mb=192, max_output_chars=2000)
PROCESS_LAYER_ONLY = SandboxLimits(wall_seconds=8, cpu_seconds=1, memory_mb=192, restrict_source=False)

# A walk from a tuple to the os module through object.__subclasses__ (os._wrap_close's globals).
WALK_TO_OS = (
    "w = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0]\n"
    "os = w.__init__.__globals__['sys'].modules['os']\n"
)

# name -> (source, limits, expected kind (or kinds), a phrase the reason must contain)
ESCAPES = {
    "import os": ("import os\nos.system('echo pwned')", FAST, "exception", "import of 'os' is not allowed"),
    "import subprocess": ("import subprocess\nsubprocess.run(['id'])", FAST, "exception", "'subprocess' is not allowed"),
    "import socket": ("import socket\nsocket.create_connection(('example.com', 80))", FAST, "exception", "'socket' is not allowed"),
    "import ctypes": ("import ctypes\nctypes.CDLL(None).system(b'id')", FAST, "exception", "'ctypes' is not allowed"),
    "from os import system": ("from os import system\nsystem('id')", FAST, "exception", "'os' is not allowed"),
    "import builtins": ("import builtins\nbuiltins.open = None", FAST, "refused", '"builtins" is a reserved name'),
    "open /etc/passwd": ("print(open('/etc/passwd').read())", FAST, "exception", "reading /etc/passwd is not allowed"),
    "open ../ relative": ("print(open('../../../../etc/passwd').read())", FAST, "exception", "is not allowed"),
    "write outside the folder": ("open('/tmp/genlab-sandbox-escape.txt', 'w').write('x')", FAST, "exception", "writing /tmp/genlab-sandbox-escape.txt is not allowed"),
    "write to the parent folder": ("open('../result', 'w').write('{}')", FAST, "exception", "is not allowed"),
    "__import__": ("__import__('os').system('id')", FAST, "refused", '"__import__" is an invalid variable name'),
    "__builtins__ tampering": ("__builtins__['open'] = None", FAST, "refused", '"__builtins__" is an invalid variable name'),
    "module attribute tampering": ("import math\nmath.sqrt = lambda x: 0", FAST, "exception", "TypeError"),
    "getattr dunder": ("getattr((), '__class__')", FAST, "exception", '"__class__" is an invalid attribute name'),
    "__subclasses__ walk": ("print(().__class__.__base__.__subclasses__())", FAST, "refused", "starts with \"_\""),
    "generator frame walk": ("g = (x for x in [1])\nprint(g.gi_frame.f_back.f_globals)", FAST, "refused", "gi_frame"),
    "module reached through an allowed one": ("import statistics\nstatistics.sys.modules['os'].system('id')", FAST, "exception", "'sys' is the module 'sys'"),
    "str.format attribute read": ("print('{0.__class__}'.format(1))", FAST, "exception", "format"),
    "string.Formatter": ("from string import Formatter\nprint(Formatter().get_field('0.__class__', [1], {}))", FAST, "exception", "Formatter"),
    "eval": ("eval('1 + 1')", FAST, "refused", "Eval calls are not allowed"),
    "exec": ("exec('import os')", FAST, "refused", "Exec calls are not allowed"),
    "infinite loop (CPU)": ("while True:\n    pass", FAST, "cpu", "CPU time limit of 1 s"),
    "infinite loop (wall clock)": ("while True:\n    pass", SandboxLimits(wall_seconds=0.6, cpu_seconds=5), "timeout", "wall-clock limit of 0.6 s"),
    "memory bomb (string)": ("x = 'a' * (10 ** 10)", FAST, "memory", "memory limit of 192 MB"),
    "memory bomb (list)": ("x = [0] * (10 ** 9)", FAST, "memory", "memory limit of 192 MB"),
    "fork bomb": ("import os\nwhile True:\n    os.fork()", FAST, "exception", "'os' is not allowed"),
    "huge output": ("while True:\n    print('x' * 100)", FAST, "output", "output limit of 2000 characters"),
    "deep recursion": ("def f(n):\n    return f(n + 1)\nf(0)", FAST, "exception", "RecursionError"),
    "syntax error": ("def f(:\n    pass", FAST, "refused", "SyntaxError"),
    # With RestrictedPython switched off the dunder walks succeed; the audit hook and limits must hold alone.
    "walk to os.system (process layer)": (WALK_TO_OS + "os.system('echo pwned')", PROCESS_LAYER_ONLY, "refused", "starting processes (os.system)"),
    "walk to os.fork (process layer)": (WALK_TO_OS + "os.fork()", PROCESS_LAYER_ONLY, "refused", "forking is not allowed"),
    "walk to os.open /etc/passwd (process layer)": (WALK_TO_OS + "os.open('/etc/passwd', os.O_RDONLY)", PROCESS_LAYER_ONLY, "refused", "reading /etc/passwd is not allowed"),
    "walk to os.open for writing (process layer)": (WALK_TO_OS + "os.open('/tmp/genlab-escape', os.O_WRONLY | os.O_CREAT)", PROCESS_LAYER_ONLY, "refused", "writing /tmp/genlab-escape is not allowed"),
    "walk to os.execv (process layer)": (WALK_TO_OS + "os.execv('/bin/sh', ['sh'])", PROCESS_LAYER_ONLY, "refused", "os.exec"),
    # importlib.import_module finds the file before the import statement's audit event: a stdlib the sandbox's
    # unprivileged uid cannot read (pyenv under /root) ends it there ("No module named"); a readable one, in the hook.
    "walk to import socket (process layer)": (WALK_TO_OS + "os.sys.modules['importlib'].import_module('socket')", PROCESS_LAYER_ONLY, ("refused", "exception"), "socket"),
    "walk to import ctypes (process layer)": (WALK_TO_OS + "os.sys.modules['importlib'].import_module('ctypes')", PROCESS_LAYER_ONLY, ("refused", "exception"), "ctypes"),
    "walk to os.chdir (process layer)": (WALK_TO_OS + "os.chdir('/')", PROCESS_LAYER_ONLY, "refused", "changing the working folder"),
    "walk to kill the parent (process layer)": (WALK_TO_OS + "os.kill(os.getppid(), 9)", PROCESS_LAYER_ONLY, "refused", "sending signals"),
    "walk to a function's code (process layer)": ("def f():\n    pass\nf.__code__ = (lambda: 1).__code__", PROCESS_LAYER_ONLY, "refused", "__code__"),
    "walk to os.listdir('/') (process layer)": (WALK_TO_OS + "print(os.listdir('/'))", PROCESS_LAYER_ONLY, "refused", "listing / is not allowed"),
}

ALLOWED = {
    "arithmetic": ("print(2 + 3 * 4)", "14\n"),
    "function and loop": ("def fact(n):\n    out = 1\n    for i in range(2, n + 1):\n        out *= i\n    return out\nprint(fact(10))", "3628800\n"),
    "allowed modules": (
        "import math, statistics, json, re\nfrom fractions import Fraction\nfrom collections import Counter\n"
        "print(math.isqrt(17), statistics.median([3, 1, 2]), Fraction(1, 3) + Fraction(1, 6))\n"
        "print(json.dumps(Counter('abca').most_common(1)), re.findall(r'\\d+', 'a1b22'))",
        "4 2 1/2\n[[\"a\", 2]] ['1', '22']\n",
    ),
    "unpacking, comprehension, try": (
        "pairs = [(1, 'a'), (2, 'b')]\nfor n, s in pairs:\n    print(n, s, sep='-', end=';')\n"
        "print(sum(n for n, _ in pairs))\ntry:\n    1 / 0\nexcept ZeroDivisionError as e:\n    print('caught', e)",
        "1-a;2-b;3\ncaught division by zero\n",
    ),
    "dates and decimals": (
        "import datetime\nfrom decimal import Decimal\nd = datetime.date(2024, 3, 1) - datetime.timedelta(days=1)\n"
        "print(d.isoformat(), Decimal('0.1') + Decimal('0.2'), datetime.datetime.strptime('2024-01-02', '%Y-%m-%d').day)",
        "2024-02-29 0.3 2\n",
    ),
    # strftime imports time through the caller's builtins; the PAL prompt offers datetime.
    "datetime.strftime and format(date)": (
        "import datetime\nd = datetime.date(2024, 3, 1)\n"
        "print(d.strftime('%d %B %Y'), format(d, '%Y/%m'), f'{datetime.datetime(2024, 1, 2, 3, 4):%H:%M}')",
        "01 March 2024 2024/03 03:04\n",
    ),
    "files inside its own folder": ("with open('notes.txt', 'w') as f:\n    f.write('kept')\nprint(open('notes.txt').read())", "kept\n"),
    "print inside functions": ("def show(x):\n    print('x =', x)\nshow(1)\nshow(2)", "x = 1\nx = 2\n"),
}


@pytest.fixture(scope="module")
def escape_results() -> dict:
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run_code, source, limits) for name, (source, limits, _, _) in ESCAPES.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.fixture(scope="module")
def allowed_results() -> dict:
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run_code, source, FAST) for name, (source, _) in ALLOWED.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", list(ESCAPES))
def test_escape_attempt_fails_safely_with_a_clear_reason(name: str, escape_results: dict) -> None:
    _, _, kind, phrase = ESCAPES[name]
    result = escape_results[name]
    assert not result.ok
    assert "pwned" not in result.stdout and "root:" not in result.stdout
    assert result.kind in ((kind,) if isinstance(kind, str) else kind), result.error
    assert phrase in result.error


def test_nothing_was_written_outside_the_sandbox(escape_results: dict) -> None:
    from pathlib import Path

    assert not Path("/tmp/genlab-sandbox-escape.txt").exists()
    assert not Path("/tmp/genlab-escape").exists()


def test_huge_output_is_cut_at_the_cap(escape_results: dict) -> None:
    assert len(escape_results["huge output"].stdout) == 2000


@pytest.mark.parametrize("name", list(ALLOWED))
def test_allowed_program_prints_the_right_answer(name: str, allowed_results: dict) -> None:
    result = allowed_results[name]
    assert result.ok, result.error
    assert result.stdout == ALLOWED[name][1]
    assert result.error is None


def test_the_environment_does_not_reach_the_program(monkeypatch: pytest.MonkeyPatch) -> None:
    # os is out of reach of a restricted program; walk to it with the compiler off and read os.environ.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    result = run_code(WALK_TO_OS + "print(sorted(os.environ))", PROCESS_LAYER_ONLY)
    assert result.ok, result.error
    assert "OPENAI_API_KEY" not in result.stdout and "'PATH'" in result.stdout


def test_bad_limits_name_the_field() -> None:
    with pytest.raises(InvalidValueError, match="cpu_seconds=0"):
        SandboxLimits(cpu_seconds=0)
    with pytest.raises(InvalidValueError, match="memory_mb=8"):
        SandboxLimits(memory_mb=8)


def test_cli_sandbox_run_json(tmp_path) -> None:
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text("import math\nprint(math.factorial(5))\n")
    bad.write_text("import subprocess\n")
    result = run_cli("sandbox", "run", str(good), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"ok": True, "stdout": "120\n", "error": None}
    result = run_cli("sandbox", "run", str(bad), "--json")
    assert result.returncode == 1
    payload = json.loads(result.stdout)
    assert payload["ok"] is False and "'subprocess' is not allowed" in payload["error"]
    result = run_cli("sandbox", "run", str(tmp_path / "missing.py"))
    assert result.returncode == 2 and result.stderr.strip() == f"error: no such Python file: {tmp_path / 'missing.py'}."
