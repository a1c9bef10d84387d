"""Atomic file writes whose result has the mode of any new file (umask-derived, e.g. 0644).

`tempfile.mkstemp` creates its file with mode 0600 and `os.replace` keeps it, so a file written that
way stays unreadable to the group and others whatever the umask. Here the temporary file is created
with `os.open(..., 0o666)`, so the kernel applies the umask (0644 under umask 022, 0640 under 027).

The temporary file is `.<name>.<random>.part` in the target's folder (same file system, so the final
rename is atomic; hidden, and matched by the `.*.part` clean-up of
`invdesign.data.build.runner`). The
target is replaced only when writing succeeded; on any error, KeyboardInterrupt included, the
temporary file is removed and an existing target is left as it was. Parent folders are not created.

- `atomic_write_text(path, text)`, `atomic_write_bytes(path, data)`: the whole content at once.
- `atomic_path(path)`: a context manager yielding the temporary path, for libraries that write by
  file name (matplotlib `savefig` with an explicit `format`, safetensors `save_file`, ase `write`,
  h5py in mode "w") or for streaming through `open(tmp, "w")` (csv, `np.savez` to a file object).
- `make_temp_dir(path)`: an empty hidden folder beside `path` with the umask-derived mode
  (`tempfile.mkdtemp` gives 0700), for writing a whole folder and renaming it into place.

A device, FIFO or socket at `path` is never renamed over: `atomic_path` refuses it with an
`InvdesignError`. The checks a command's `--out` needs (inputs, locks, `--force`, signals) are in
`invdesign.io.outputs`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from invdesign.core.errors import InvdesignError

_TRIES = 100
_MAX_STEM = 200  # keeps `.<name>.<16 hex>.part` under the usual 255-byte limit of a file name


def temp_name(path: Path, suffix: str) -> Path:
    """`.<name>.<16 random hex><suffix>` beside `path` (not created)."""
    return path.with_name(f".{path.name[:_MAX_STEM]}.{secrets.token_hex(8)}{suffix}")


def refuse_special(path: Path) -> None:
    """Raise `InvdesignError` if `path` is a device, FIFO or socket (a rename would replace it)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise InvdesignError("not a regular file (a device, FIFO or socket); refusing to "
                             "replace it", path)


def create_temp_file(path: Path) -> tuple[Path, int]:
    """Create an unused, empty `.<name>.<random>.part` beside `path` with mode 0o666 & ~umask;
    returns it and the permission bits it got."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_TRIES):
        tmp = temp_name(path, ".part")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        try:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
        return tmp, mode
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(path.parent))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; leaving the block without error renames it to `path`.

    The temporary file already exists (empty, with the umask-derived mode), so write it with a
    truncating mode ("w", "wb", h5py "w"), not an exclusive one ("x"). A writer that replaces the
    file instead (safetensors `save_file`) is fine: the mode is set back before the rename.
    Writers that take the format from the file name's extension must be given it
    (`savefig(tmp, format="png")`); `np.savez` appends `.npz` to a name without it, so give it
    `open(tmp, "wb")` instead.
    """
    path = Path(path)
    refuse_special(path)
    tmp, mode = create_temp_file(path)
    try:
        yield tmp
        # a writer may have put its own file at `tmp` (safetensors >= 0.8 writes a 0600 temporary
        # file and renames it over the name it is given): give the result the mode created here
        if stat.S_IMODE(tmp.stat().st_mode) != mode:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically; returns `path` as a Path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def atomic_write_text(
    path: str | os.PathLike, text: str, encoding: str = "utf-8", newline: str | None = None
) -> Path:
    """Write `text` to `path` atomically (UTF-8 unless told; `newline` as for `open`); returns
    `path` as a Path."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding=encoding, newline=newline) as fh:
        fh.write(text)
    return path


def make_temp_dir(path: str | os.PathLike, suffix: str = ".partial") -> Path:
    """Create an empty folder `.<name>.<random><suffix>` beside `path` with mode 0o777 & ~umask
    (e.g. 0755) and return it. The caller fills it, renames it to `path` and removes it on error."""
    path = Path(path)
    for _ in range(_TRIES):
        tmp = temp_name(path, suffix)
        try:
            tmp.mkdir(0o777)
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(errno.EEXIST, "no unused temporary folder name", str(path.parent))
