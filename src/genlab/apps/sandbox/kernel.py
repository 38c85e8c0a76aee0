"""The kernel side of the sandbox: Linux system calls, by ctypes, that confine the child process for good.

The child (:mod:`.child`) loads this file by path as a top-level module, before anything else and
without genlab (it runs ``python -I -S``); the parent imports it as ``genlab.apps.sandbox.kernel`` only
for :func:`probe_layers`. So it imports nothing but the standard library.

What is hand-written here, and why:

- **Landlock** (``landlock_create_ruleset``/``add_rule``/``restrict_self``, syscalls 444-446 on every
  architecture): three calls and two structs. The PyPI ``landlock`` package is a 1.0.0.dev pre-release,
  so the ~50 lines are here, following the kernel's ``Documentation/userspace-api/landlock.rst``.
- **seccomp** goes through **libseccomp** (``libseccomp.so.2``), which writes the BPF program, checks the
  architecture (a foreign-architecture or x32 system call is killed) and knows each architecture's
  system call numbers. The five functions used are bound here rather than through ``pyseccomp``, whose
  import runs ``ctypes.util.find_library`` and so starts ``ldconfig`` on every sandbox start (~60 ms).
- capabilities (``capset``, ``PR_CAPBSET_DROP``, ``PR_CAP_AMBIENT``), ``no_new_privs`` and ``unshare``:
  one libc call each; the standard library has no binding for them.
"""

import ctypes
import errno
import os
import stat
import sys

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long
try:  # loaded now, while the child may still read every library
    LIBSECCOMP = ctypes.CDLL("libseccomp.so.2", use_errno=True)
except OSError as error:
    LIBSECCOMP, LIBSECCOMP_ERROR = None, f"libseccomp.so.2 does not load ({error})"

# Landlock (include/uapi/linux/landlock.h)
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_ABI1 = (1 << 13) - 1  # execute ... make_sym: every right of ABI 1
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3, 5
FS_FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV  # the rights a file rule may hold
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6

# prctl, capabilities, namespaces
PR_SET_NO_NEW_PRIVS, PR_GET_SECCOMP, PR_CAPBSET_DROP, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 38, 21, 24, 47, 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522
CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
CAP_CHOWN, CAP_SETGID, CAP_SETUID, CAP_SETPCAP, CAP_SYS_ADMIN = 0, 6, 7, 8, 21

# seccomp through libseccomp (include/seccomp.h)
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO_EPERM = 0x00050000 | errno.EPERM
SCMP_CMP_NE = 2
# Refused with EPERM (not killed, so the program gets a PermissionError it can report): every way to
# start a process or thread (the child needs neither), to reach another process's memory, to open a
# socket, to leave or remake the namespaces and mounts, and the kernel interfaces sandboxes refuse by
# habit (bpf, perf, userfaultfd, io_uring, which runs system calls the filter would not see, keyrings).
REFUSED_SYSCALLS = (
    "fork", "vfork", "clone", "clone3", "execve", "execveat",
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_open", "pidfd_getfd", "pidfd_send_signal", "kcmp",
    "socket", "socketpair",
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen",
    "fsmount", "fspick", "mount_setattr", "name_to_handle_at", "open_by_handle_at",
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "keyctl", "add_key", "request_key", "personality",
)  # fmt: skip
# Signals: refused unless aimed at the child itself (its first argument is its own pid; raise() uses tgkill).
SELF_ONLY_SYSCALLS = ("kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")


class LayerRefused(Exception):
    """The kernel refused one layer: ``layer`` names it, the message says why."""

    def __init__(self, layer, reason):
        super().__init__(f"{layer}: {reason}")
        self.layer, self.reason = layer, reason


class RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]  # fmt: skip


class PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


class ArgCmp(ctypes.Structure):  # struct scmp_arg_cmp
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def _oserror(what):
    number = ctypes.get_errno()
    return f"{what} failed: {errno.errorcode.get(number, number)} ({os.strerror(number)})"


def landlock_abi():
    """The Landlock ABI version the kernel offers, 0 when it has none (ENOSYS) or it is off (EOPNOTSUPP)."""
    version = LIBC.syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), LANDLOCK_CREATE_RULESET_VERSION)
    return max(int(version), 0)


def landlock_ruleset(read_paths, write_paths):
    """A ruleset reading only ``read_paths`` and reading/writing only ``write_paths``: ``(fd, abi)``.

    Built before the child gives up its identity (the paths may lie under a folder only the parent's user
    can search), enforced by :func:`landlock_enforce` after. Every right the ABI knows is handled, so what
    no rule grants is refused: other files and folders (``/proc`` included), executing anything, TCP
    bind/connect (ABI 4), abstract UNIX sockets and signals to processes outside the sandbox (ABI 6).
    """
    abi = landlock_abi()
    if abi < 1:
        raise LayerRefused("landlock", "the kernel has no Landlock (landlock_create_ruleset refused)")
    fs = FS_ABI1 | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0) | (FS_IOCTL_DEV if abi >= 5 else 0)
    attr = RulesetAttr(fs, NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0,
                       SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0)  # fmt: skip
    size = ctypes.sizeof(RulesetAttr) if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = LIBC.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0)
    if ruleset < 0:
        raise LayerRefused("landlock", _oserror("landlock_create_ruleset"))
    rules = [(path, FS_READ_FILE | FS_READ_DIR) for path in read_paths] + [(path, fs) for path in write_paths]
    for path, access in rules:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                access &= FS_FILE_RIGHTS
            rule = PathBeneathAttr(access & fs, fd)
            if LIBC.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(rule), 0) < 0:
                os.close(ruleset)
                raise LayerRefused("landlock", _oserror(f"landlock_add_rule({path})"))
        finally:
            os.close(fd)
    return ruleset, abi


def landlock_enforce(ruleset):
    """Restrict this process to ``ruleset`` for good (needs ``no_new_privs``); holds across ``chdir``."""
    try:
        if LIBC.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) < 0:
            raise LayerRefused("landlock", _oserror("landlock_restrict_self"))
    finally:
        os.close(ruleset)


def no_new_privs():
    """``PR_SET_NO_NEW_PRIVS``: no exec can ever grant privileges again (setuid files, file capabilities)."""
    if LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise LayerRefused("no_new_privs", _oserror("prctl(PR_SET_NO_NEW_PRIVS)"))


def seccomp_available():
    """None when the kernel has seccomp filters and libseccomp loads, else why not."""
    if LIBC.prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0:
        return _oserror("prctl(PR_GET_SECCOMP)")
    return LIBSECCOMP_ERROR if LIBSECCOMP is None else None


def seccomp_refuse():
    """Install the filter: :data:`REFUSED_SYSCALLS` fail with EPERM, signals only to this process."""
    lib = LIBSECCOMP
    if lib is None:
        raise LayerRefused("seccomp", LIBSECCOMP_ERROR)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(ArgCmp)]  # fmt: skip
    lib.seccomp_load.argtypes = lib.seccomp_release.argtypes = [ctypes.c_void_p]
    context = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not context:
        raise LayerRefused("seccomp", "seccomp_init failed")
    try:
        not_self = ArgCmp(0, SCMP_CMP_NE, os.getpid(), 0)
        for names, count, compare in ((REFUSED_SYSCALLS, 0, None), (SELF_ONLY_SYSCALLS, 1, ctypes.pointer(not_self))):
            for name in names:
                number = lib.seccomp_syscall_resolve_name(name.encode())
                if number < 0:  # not a system call on this architecture (fork on arm64): nothing to refuse
                    continue
                code = lib.seccomp_rule_add_array(context, SCMP_ACT_ERRNO_EPERM, number, count, compare)
                if code < 0:
                    raise LayerRefused("seccomp", f"seccomp_rule_add({name}) failed: {os.strerror(-code)}")
        code = lib.seccomp_load(context)
        if code < 0:
            raise LayerRefused("seccomp", f"seccomp_load failed: {os.strerror(-code)}")
    finally:
        lib.seccomp_release(context)


def unshare(user, network):
    """A fresh user namespace and/or network namespace (the latter holds only a down loopback)."""
    flags = (CLONE_NEWUSER if user else 0) | (CLONE_NEWNET if network else 0)
    if flags and LIBC.unshare(flags) != 0:
        layer = "user and network namespaces" if user and network else "user namespace" if user else "network namespace"
        raise LayerRefused(layer, _oserror("unshare"))


def map_ids_to_self(uid, gid):
    """In a fresh user namespace: map the caller's own uid and gid to themselves, and nothing else."""
    try:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as file:
                file.write(text)
    except OSError as error:
        raise LayerRefused("user namespace", f"writing the id map failed: {error}") from None


def become(uid, gid):
    """From root: drop the capability bounding set, then every group and id to ``uid``/``gid`` (unused ids)."""
    drop_bounding_set()
    try:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as error:
        raise LayerRefused("unprivileged user", f"setuid to {uid} failed: {error}") from None


def drop_bounding_set():
    for cap in range(64):
        if LIBC.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            if ctypes.get_errno() == errno.EINVAL:  # past the kernel's last capability: all dropped
                return
            raise LayerRefused("capabilities", _oserror(f"prctl(PR_CAPBSET_DROP, {cap})"))


def drop_capabilities():
    """Empty every capability set (effective, permitted, inheritable, ambient), then check all five are empty."""
    LIBC.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    data = (CapData * 2)()
    if LIBC.capset(ctypes.byref(CapHeader(LINUX_CAPABILITY_VERSION_3, 0)), data) != 0:
        raise LayerRefused("capabilities", _oserror("capset"))
    held = {name: value for name, value in capability_sets().items() if value}
    if held:
        raise LayerRefused("capabilities", f"capabilities remain: {held}")


def capability_sets():
    """``{"CapInh": int, "CapPrm": ..., "CapEff", "CapBnd", "CapAmb"}`` of this process."""
    with open("/proc/self/status") as status:
        return {key: int(value, 16) for key, _, value in (line.partition(":\t") for line in status) if key.startswith("Cap")}


def confine(work, read_roots, sandbox_id, isolate_network, allow_unsafe, set_limits):
    """Apply every layer, in order, to this process for good; returns ``(granted, missing)`` dicts.

    As root: a network namespace, then the unused ``sandbox_id`` as uid and gid with no groups and an
    empty bounding set. Not root: a user namespace (the caller's own ids mapped to themselves, so no
    capability in the parent namespace) with a network namespace. Then, either way: every capability
    set emptied, ``set_limits()`` (rlimits), ``no_new_privs``, Landlock, seccomp. A layer the kernel
    refuses raises :class:`LayerRefused`, unless ``allow_unsafe``, which records it in ``missing``.
    """
    granted, missing = {}, {}
    if not sys.platform.startswith("linux"):  # every call below is Linux's
        if not allow_unsafe:
            raise LayerRefused("Linux kernel layers", f"{sys.platform} has no Landlock, seccomp or these namespaces")
        set_limits()
        return granted, {"Linux kernel layers": f"{sys.platform} has no Landlock, seccomp or these namespaces"}

    def attempt(name, action):  # name None: a preparing step, recorded only if it fails
        try:
            value = action()
            if name is not None:
                granted[name] = value
        except LayerRefused as error:
            if not allow_unsafe:
                raise
            missing[error.layer] = error.reason

    ruleset = {}
    attempt(None, lambda: ruleset.update(zip(("fd", "abi"), landlock_ruleset(read_roots, [work]))))
    if os.geteuid() == 0:
        if isolate_network:
            attempt("network namespace", lambda: unshare(user=False, network=True) or True)
        attempt("unprivileged user", lambda: become(sandbox_id, sandbox_id) or f"uid {sandbox_id}")
    else:
        uid, gid = os.getuid(), os.getgid()
        attempt("user namespace", lambda: unshare(user=True, network=isolate_network) or map_ids_to_self(uid, gid)
                or f"uid {uid} in a new user namespace")  # fmt: skip
        if isolate_network and "user namespace" in granted:
            granted["network namespace"] = True
        attempt("capabilities", lambda: drop_bounding_set())
    attempt("capabilities", lambda: drop_capabilities() or "none")
    set_limits()
    attempt("no_new_privs", lambda: no_new_privs() or True)
    if ruleset:
        attempt("landlock", lambda: landlock_enforce(ruleset["fd"]) or f"ABI {ruleset['abi']}")
    attempt("seccomp", lambda: seccomp_refuse() or f"{len(REFUSED_SYSCALLS)} system calls refused, signals only to itself")
    return granted, missing
