"""Small helpers for the channels that write files (email without a server, letters, legal case files).

Names are injective: every file or folder a notification writes starts with its outbox row id, so `INV/1`,
`INV_1` and `INV 1`, or `发票1` and `收据1`, never share a file; the rest of the name is only there for people.
Files are created exclusively inside the configured folder: an existing file is never replaced. The one file a
notification may find already there is its own, from an attempt that wrote it and crashed before the
delivery was recorded; that file is kept and the delivery counts as done.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

#: Letters and digits of any script, '.', '_' and '-' survive; separators and control characters do not.
_UNSAFE = re.compile(r"[^\w.-]+")
#: Characters of the readable part (bytes grow up to 3× for CJK; file systems allow 255 bytes a name).
_READABLE = 60


def safe_name(text: str) -> str:
    """A readable, file-name-safe rendering of an invoice number or key; NOT unique (see `notice_stem`)."""
    cleaned = _UNSAFE.sub("_", text).strip("._") or "message"
    return cleaned[:_READABLE]


def notice_stem(notification_id: int, text: str) -> str:
    """The unique stem of what notification `notification_id` writes: `00000042-INV-7_reminder…`."""
    return f"{notification_id:08d}-{safe_name(text)}"


def inside(folder: Path, name: str) -> Path:
    """`folder / name`, refusing a name that would leave the folder (a separator, `..`)."""
    path = folder / name
    if path.parent != folder or name in ("", ".", ".."):
        raise ValueError(f"{name!r} is not a plain file name")
    return path


def write_new(path: Path, data: bytes) -> bool:
    """Create `path` with `data`, never replacing an existing file. A reader (or a crash) never sees half a
    file: the data goes to a temporary file first, which is then hard-linked into place (atomic, and it fails
    when the name exists). Returns False when the file was already there (it is left as it was)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return False
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(handle, "wb") as sink:
            sink.write(data)
            sink.flush()
            os.fsync(sink.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        try:
            os.unlink(temporary)
        except OSError:
            pass
