"""Which of the sandbox's kernel layers this machine grants, asked once per process without side effects.

The child applies the layers for real (:func:`genlab.apps.sandbox.kernel.confine`) and stops if one is
refused; this probe lets :func:`~genlab.apps.sandbox.run_code` refuse before starting a process, and
``genlab sandbox layers`` show what the kernel offers.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from dataclasses import dataclass, field

from genlab.apps.sandbox import kernel

NEEDED_CAPABILITIES = {"CAP_CHOWN": kernel.CAP_CHOWN, "CAP_SETGID": kernel.CAP_SETGID, "CAP_SETUID": kernel.CAP_SETUID,
                       "CAP_SETPCAP": kernel.CAP_SETPCAP, "CAP_SYS_ADMIN": kernel.CAP_SYS_ADMIN}  # fmt: skip
# Run by a non-root parent: can this user make a user namespace with a network namespace in it?
USERNS_PROBE = "import ctypes, os; os._exit(0 if ctypes.CDLL(None).unshare(0x50000000) == 0 else 1)"


@dataclass(frozen=True)
class KernelLayers:
    granted: dict[str, str] = field(default_factory=dict)  # layer -> what the kernel offers
    missing: dict[str, str] = field(default_factory=dict)  # layer -> why it cannot be had here

    def refusal(self) -> str:
        """One sentence for a user whose kernel lacks a layer."""
        reasons = "; ".join(f"{layer} ({why})" for layer, why in self.missing.items())
        return (f"the sandbox refuses to run model code: this kernel does not grant {reasons}; pass --unsafe-sandbox "
                "(SandboxLimits(allow_unsafe=True)) to run it with only the layers that remain.")  # fmt: skip

    def unsafe_warning(self) -> str:
        """What ``--unsafe-sandbox`` means here, for the CLI to print before it runs anything."""
        if not self.missing:
            return "warning: --unsafe-sandbox: every kernel layer is granted here, so the sandbox runs complete anyway."
        return (f"warning: --unsafe-sandbox: model code will run WITHOUT {', '.join(self.missing)} (this kernel refuses "
                f"{'it' if len(self.missing) == 1 else 'them'}); a program that defeats the Python checks may reach "
                "what those layers would have stopped.")  # fmt: skip


@functools.cache
def probe_layers() -> KernelLayers:
    if not sys.platform.startswith("linux"):  # system call numbers below are Linux's; elsewhere they mean other things
        return KernelLayers({}, {"Linux kernel layers": f"{sys.platform} has no Landlock, seccomp or these namespaces"})
    granted: dict[str, str] = {}
    missing: dict[str, str] = {}
    abi = kernel.landlock_abi()
    if abi >= 1:
        granted["landlock"] = f"ABI {abi}"
    else:
        missing["landlock"] = "landlock_create_ruleset is refused: no Landlock in this kernel, or it is switched off"
    seccomp_problem = kernel.seccomp_available()
    if seccomp_problem is None:
        granted["seccomp"] = "filters through libseccomp.so.2"
    else:
        missing["seccomp"] = seccomp_problem
    if os.geteuid() == 0:
        effective = kernel.capability_sets().get("CapEff", 0)
        lacking = [name for name, bit in NEEDED_CAPABILITIES.items() if not effective >> bit & 1]
        if lacking:
            missing["unprivileged user"] = f"root here lacks {', '.join(lacking)} (a container?)"
        else:
            granted["unprivileged user"] = "setuid to an unused uid; network namespace"
    else:
        done = subprocess.run([sys.executable, "-I", "-S", "-c", USERNS_PROBE], capture_output=True, timeout=30)
        if done.returncode == 0:
            granted["user namespace"] = "unprivileged user and network namespaces"
        else:
            missing["user namespace"] = "unshare(CLONE_NEWUSER | CLONE_NEWNET) is refused for this user"
    return KernelLayers(granted, missing)
