"""One output discipline for every command that writes (`sample`, `screen`, `evaluate --out`,
`train --out`, `data build`).

An output (a file or a folder) is opened before the work starts and committed when it is complete:

1. Its path is resolved (symlinks, `..`) before any check, and so is every input.
2. It must not be, contain or be contained in an input (file or folder), nor be or contain the
   current folder; it must not be a device, FIFO or socket; an existing one (other than an empty
   folder) is replaced only with `force`. A name too long for the file system is refused up front.
3. An exclusive lock (`fcntl.flock` on `.<name>.lock` beside the output, removed afterwards) keeps
   two runs from writing the same output: the second fails at once.
4. The work writes into a hidden temporary file or folder beside the output
   (`.<name>.<random>.part` / `.partial`); `commit()` swaps it into place (an old output is moved
   aside and removed only after the new one is in place). Until then the old output is untouched.
5. SIGTERM and SIGINT while the output is open raise `Interrupted` (a KeyboardInterrupt, so the CLI
   prints one line and exits non-zero); the temporary file or folder and the lock are removed.
6. OSErrors about the output (EACCES, EROFS, ENOSPC, ENAMETOOLONG, ...) become one-line
   `InvdesignError`s naming the path.

- `Output(path, inputs=..., force=..., folder=...)`: the life cycle (a context manager; `tmp` is
  where to write, `commit()` publishes it; leaving the block without commit discards it).
- `locked_folder(path, inputs=...)`: for resumable builds that write file by file into a folder
  (`data build`): the same checks and lock, no temporary folder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import signal
import stat
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from invdesign.core.errors import InvdesignError
from invdesign.io.atomic import create_temp_file, make_temp_dir, temp_name

PathLike = str | os.PathLike
#: errno values that mean "this output cannot be written here"; always reported as one line.
WRITE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT,
                errno.ENAMETOOLONG, errno.ENOTDIR, errno.EEXIST, errno.ELOOP, errno.EISDIR}
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived while an output was open (its temporary files are removed)."""


def resolve(path: PathLike) -> Path:
    """`path` with `~`, symlinks and `..` resolved (also below a part that does not exist yet)."""
    try:
        return Path(path).expanduser().resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop on older Pythons
        raise InvdesignError(f"cannot resolve the path ({exc})", path) from None


def special_kind(path: Path) -> str | None:
    """'device', 'FIFO', 'socket' for such a file at `path`, else None (absent, file, folder)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    return None


def check_name_length(path: Path, option: str = "--out") -> None:
    """Refuse a path with a name longer than the file system's limit (usually 255 bytes) or a
    whole path longer than PATH_MAX (usually 4096 bytes)."""
    existing = next((p for p in (path, *path.parents) if os.path.exists(p)), Path("/"))
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
        path_max = os.pathconf(existing, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    long = next((p for p in path.parts if len(os.fsencode(p)) > name_max), None)
    if long is not None:
        raise InvdesignError(f"{option}: a name in the path is too long ({len(os.fsencode(long))} "
                             f"bytes, at most {name_max})", path)
    if len(os.fsencode(str(path))) >= path_max:
        raise InvdesignError(f"{option}: path too long (at most {path_max - 1} bytes)", path)


def check_separate(out: Path, inputs: Iterable[PathLike], option: str = "--out") -> None:
    """Refuse an output (resolved) that is, contains or is inside one of `inputs`."""
    for given in inputs:
        if given is None or str(given) == "":
            continue
        inp = resolve(given)
        if out == inp:
            raise InvdesignError(f"{option} is the input {given}; choose another {option}", out)
        if out in inp.parents:
            raise InvdesignError(f"{option} holds the input {given}; choose another {option}", out)
        if inp in out.parents:
            raise InvdesignError(f"{option} is inside the input folder {given}; choose another "
                                 f"{option}", out)


def check_not_cwd(out: Path, option: str = "--out") -> None:
    """Refuse a folder output that would replace the current folder or one above it."""
    cwd = Path.cwd().resolve()
    if out == cwd or out in cwd.parents:
        raise InvdesignError(f"{option} is or holds the current folder; choose another {option}",
                             out)


def write_error(exc: OSError, path: PathLike, what: str = "output") -> InvdesignError:
    """One line for an OSError met while writing `path`."""
    reason = exc.strerror or type(exc).__name__
    return InvdesignError(f"cannot write the {what} ({reason})", path)


def _is_ours(exc: BaseException, paths: Iterable[Path]) -> bool:
    """True if `exc` is an OSError about writing one of `paths` (or anything under them), or a
    full disk / quota (which name no file)."""
    if not isinstance(exc, OSError) or exc.errno not in WRITE_ERRNOS:
        return False
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
    return any(n == str(p) or n.startswith(str(p) + os.sep) for n in names for p in paths)


class _Lock:
    """An exclusive, non-blocking `flock` on `.<name>.lock` beside `path`; the file is removed on
    release (a stale file left by a killed run holds no lock and is taken over)."""

    def __init__(self, path: Path, option: str) -> None:
        self.path = path.with_name(f".{path.name[:200]}.lock")
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        while True:
            fd = os.open(self.path, flags, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise InvdesignError(f"another run is writing this {option} (lock {self.path.name})"
                                     "; wait for it to finish or choose another " + option,
                                     path) from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a file another run removed between our open and our flock
                self.fd = fd
                return
            os.close(fd)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()  # while still locked, so a waiting run retries with a new file
        os.close(self.fd)


class _Signals:
    """While active, SIGTERM and SIGINT raise `Interrupted` once (later ones are ignored, so the
    clean-up runs); on `restore` the previous handlers come back. Only in the main thread."""

    def __init__(self) -> None:
        self.previous: dict[int, object] = {}
        self.fired = False
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        if not self.fired:
            self.fired = True
            raise Interrupted(f"stopped by {signal.Signals(signum).name}")

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self.previous = {}


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    """Hold SIGTERM/SIGINT back (they arrive after the block) so a swap is never cut in half."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _check_target(out: Path, folder: bool, force: bool, option: str) -> None:
    """Refuse a special file, an output of the other kind, or an existing one without `force`."""
    kind = special_kind(out)
    if kind is not None:
        raise InvdesignError(f"{option} is a {kind}, not a {'folder' if folder else 'file'}; "
                             "choose a regular path", out)
    if not os.path.lexists(out):
        return
    if folder and not out.is_dir():
        raise InvdesignError(f"{option} exists and is not a folder", out)
    if not folder and out.is_dir():
        raise InvdesignError(f"{option} is a folder; give a file name", out)
    if folder and not any(out.iterdir()):
        return  # an empty folder: nothing to lose
    if not force:
        what = "folder" if folder else "file"
        raise InvdesignError(f"output {what} exists; use --force to replace it", out)


class Output:
    """A file or folder output, written out of sight and swapped in on `commit()`.

    Args:
        path: the output the user asked for (resolved here).
        inputs: files and folders the run reads; the output must not overlap any of them.
        force: replace an existing output (only at `commit`, once the new one is complete).
        folder: a folder output (else a file).
        option: the option's name in messages.
        handle_signals: turn SIGTERM/SIGINT into `Interrupted` while open.
    """

    def __init__(self, path: PathLike, inputs: Iterable[PathLike] = (), force: bool = False,
                 folder: bool = False, option: str = "--out", handle_signals: bool = True) -> None:
        self.out = resolve(path)
        self.force, self.folder, self.option = force, folder, option
        self.committed = False
        self.tmp: Path | None = None
        check_name_length(self.out, option)
        check_separate(self.out, inputs, option)
        check_not_cwd(self.out, option)
        _check_target(self.out, folder, force, option)
        self._signals = _Signals() if handle_signals else None
        self._lock: _Lock | None = None
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self._lock = _Lock(self.out, option)
            _check_target(self.out, folder, force, option)  # again, now that no other run writes
            self.tmp = make_temp_dir(self.out) if folder else create_temp_file(self.out)[0]
        except BaseException as exc:
            self.discard()
            if isinstance(exc, OSError):
                raise write_error(exc, self.out) from None
            raise

    def __enter__(self) -> Output:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.committed:
            self.discard()
        if exc is not None and self.tmp is not None and _is_ours(exc, (self.tmp, self.out)):
            raise write_error(exc, self.out) from None

    def commit(self) -> Path:
        """Put the complete output in place (replacing an old one last), release the lock and
        return the output path."""
        assert self.tmp is not None and not self.committed
        try:
            with _signals_blocked():
                _check_target(self.out, self.folder, self.force, self.option)
                if self.folder:
                    self._swap_folder()
                else:
                    os.replace(self.tmp, self.out)
                self.committed = True
        except OSError as exc:
            self.discard()
            raise write_error(exc, self.out) from None
        self._close()
        return self.out

    def _swap_folder(self) -> None:
        assert self.tmp is not None
        backup = None
        if self.out.exists():
            backup = temp_name(self.out, ".old")
            os.rename(self.out, backup)
        try:
            os.rename(self.tmp, self.out)
        except OSError:
            if backup is not None:
                os.rename(backup, self.out)
            raise
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)

    def discard(self) -> None:
        """Remove the temporary file or folder and the lock (nothing of this run remains)."""
        if self.tmp is not None and not self.committed:
            if self.tmp.is_dir() and not self.tmp.is_symlink():
                shutil.rmtree(self.tmp, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    self.tmp.unlink()
        self._close()

    def _close(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self._signals is not None:
            self._signals.restore()
            self._signals = None


@contextlib.contextmanager
def locked_folder(path: PathLike, inputs: Iterable[PathLike] = (),
                  option: str = "--out") -> Iterator[Path]:
    """A folder written file by file (each file atomically, e.g. a resumable build): resolved,
    checked like `Output` (existing content is kept; no `--force`), created, and locked for the
    block. Yields the resolved folder."""
    out = resolve(path)
    check_name_length(out, option)
    check_separate(out, inputs, option)
    kind = special_kind(out)
    if kind is not None or (os.path.lexists(out) and not out.is_dir()):
        raise InvdesignError(f"{option} exists and is not a folder", out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = _Lock(out, option)
    except OSError as exc:
        raise write_error(exc, out) from None
    try:
        yield out
    except OSError as exc:
        if _is_ours(exc, (out,)):
            raise write_error(exc, out) from None
        raise
    finally:
        lock.release()
