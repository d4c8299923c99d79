"""Reading files a stranger wrote within the limits of the settings (`harness.config.Settings`): a file's size
before it is parsed, an archive's member count and unpacked size (declared, and counted while streaming, since
headers can lie), and line length (lines are streamed; an error quotes at most `QUOTE_CHARS` of a line).

Every refusal is the caller's `HarnessError` subclass naming the file, the limit and the variable that raises it.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from harness.errors import HarnessError

CHUNK_BYTES = 1 << 16
QUOTE_CHARS = 80
_BOM = b"\xef\xbb\xbf"


def quoted(text: str, limit: int = QUOTE_CHARS) -> str:
    """`repr(text)`, cut to about `limit` characters: what an error message may quote of a stranger's text."""
    shown = repr(text[: limit + 1])
    return shown if len(shown) <= limit and len(text) <= limit else shown[: limit - 4] + "...'"


def clipped(text: str, limit: int = QUOTE_CHARS) -> str:
    """`text` cut to about `limit` characters (a name from an archive, which may be 64 KiB long), its control
    characters escaped (a name holding a line break must not add a line to a one-line error)."""
    text = text[: limit + 1]
    if not text.isprintable():
        text = "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def size_text(size: int) -> str:
    return f"{size / (1 << 20):,.1f} MiB" if size >= 1 << 20 else f"{size:,} bytes"


def refuse_size(error: type[HarnessError], shown: str, what: str, size: int, limit: int, variable: str) -> None:
    """Raise `error` when `size` bytes exceed `limit`."""
    if size > limit:
        raise error(
            f"{shown}: {what} is {size_text(size)}, over the limit of {size_text(limit)}",
            f"make it smaller, or raise {variable}",
        )


def read_bounded(path: Path, limit: int, variable: str, error: type[HarnessError], what: str = "the file") -> bytes:
    """The bytes of a regular file of at most `limit` bytes: its size is checked before anything is read, and
    no more than `limit` + 1 bytes are read (a file that grows, or reports no size, is refused all the same)."""
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise error(f"{path}: no such file", "check the path") from exc
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or exc})", "check the path and its permissions") from exc
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{path}: is a directory, expected a file", "give the path of the file")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{path}: not a regular file", "give the path of a plain file")
    refuse_size(error, str(path), what, info.st_size, limit, variable)
    try:
        with path.open("rb") as stream:
            data = stream.read(limit + 1)
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or exc})", "check the file's permissions") from exc
    refuse_size(error, str(path), what, len(data), limit, variable)
    return data


class ByteBudget:
    """The unpacked bytes a source (an archive's members, a folder's files) may still yield; `charge` refuses more."""

    def __init__(self, source: str, limit: int, variable: str, error: type[HarnessError]):
        self.source, self.limit, self.variable, self.error = source, limit, variable, error
        self.used = 0

    def charge(self, count: int, shown: str) -> None:
        self.used += count
        if self.used > self.limit:
            raise self.error(
                f"{shown}: {self.source} hold more than {size_text(self.limit)}, unpacked",
                f"make it smaller, or raise {self.variable}",
            )


def counted_chunks(stream: BinaryIO, declared: int, budget: ByteBudget, shown: str) -> Iterator[bytes]:
    """`stream`'s bytes in chunks, charged to `budget`: the declared size before the first read, and every
    byte beyond it as it arrives."""
    budget.charge(declared, shown)
    charged = declared
    read = 0
    while chunk := stream.read(CHUNK_BYTES):
        read += len(chunk)
        if read > charged:
            budget.charge(read - charged, shown)
            charged = read
        yield chunk


def _line_end(buffer: bytes, eof: bool) -> int:
    """Where the complete lines of `buffer` end: after its last line break (a final CR is held back while more
    may come, since it may be the first half of a CRLF)."""
    if eof:
        return len(buffer)
    searched = len(buffer) - 1 if buffer.endswith(b"\r") else len(buffer)
    return max(buffer.rfind(b"\n", 0, searched), buffer.rfind(b"\r", 0, searched)) + 1


def stream_lines(
    chunks: Iterable[bytes], shown: str, max_line_bytes: int, variable: str, error: type[HarnessError]
) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) of the non-blank lines of a byte stream, read as the official RRC reader does
    (UTF-8 with undecodable bytes replaced, a byte-order mark dropped, LF, CRLF or CR line ends). A line longer
    than `max_line_bytes` is refused as soon as that many bytes of it have arrived, quoting its start."""
    buffer, number = b"", 0
    for chunk, eof in _with_eof(chunks):
        buffer += chunk
        end = _line_end(buffer, eof)
        complete, buffer = buffer[:end], buffer[end:]
        for raw in complete.splitlines():
            number += 1
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            if len(raw) > max_line_bytes:
                _refuse_line(raw, shown, number, max_line_bytes, variable, error)
            line = raw.decode("utf-8", errors="replace")
            if line.strip():
                yield number, line
        if len(buffer.rstrip(b"\r")) > max_line_bytes:
            _refuse_line(buffer, shown, number + 1, max_line_bytes, variable, error)


def _with_eof(chunks: Iterable[bytes]) -> Iterator[tuple[bytes, bool]]:
    for chunk in chunks:
        yield chunk, False
    yield b"", True


def _refuse_line(raw: bytes, shown: str, number: int, limit: int, variable: str, error: type[HarnessError]) -> Any:
    start = raw[: QUOTE_CHARS * 4].decode("utf-8", errors="replace")
    raise error(
        f"{shown}, line {number}: longer than {limit:,} bytes, starting {quoted(start)}",
        f"write one record per line, or raise {variable}",
    )
