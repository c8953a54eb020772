"""Safe output files: never overwrite an input, never leave a partial file behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vcodec.errors import UserError


def check_output(output: str | os.PathLike, *inputs: str | os.PathLike) -> Path:
    """Validate an output path before any work starts."""
    out = Path(output)
    for inp in inputs:
        inp = Path(inp)
        if out.resolve() == inp.resolve() or (out.exists() and inp.exists() and os.path.samefile(out, inp)):
            raise UserError(f"output {out} is the same file as the input: refusing to overwrite it")
    if out.is_dir():
        raise UserError(f"output {out} is a directory")
    parent = out.resolve().parent
    if not parent.is_dir():
        raise UserError(f"output directory does not exist: {parent}")
    if not os.access(parent, os.W_OK):
        raise UserError(f"output directory is not writable: {parent}")
    return out


@contextlib.contextmanager
def atomic_output(output: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `output`; rename it into place only on success."""
    out = Path(output)
    tmp_path: Path | None = None
    try:  # one try from creation on: an interrupt right after mkstemp must not leave the file behind
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=f".partial{out.suffix}",
                                       dir=out.resolve().parent)
        except OSError as exc:
            raise UserError(f"cannot write {out}: {exc.strerror}") from None
        tmp_path = Path(tmp)
        os.close(fd)
        yield tmp_path
        os.replace(tmp_path, out)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        if tmp_path is not None:
            with contextlib.suppress(FileNotFoundError):
                tmp_path.unlink()
