"""Project archives for the submission server: the client packs a submission folder, the server unpacks it.

`pack` writes a deterministic gzip-compressed POSIX (pax) tar of exactly the files `harness.submission` selects
(the set `content_hash` hashes, under the same limits): sorted relative paths, regular files only (a link the
selection follows is stored as the file it points to), mode 0644 or 0755, owner 0/"" and mtime 0, no folder
entries, and a gzip header without a name or a time. The same content gives the same bytes wherever the same
deflate compresses it: stock zlib at a fixed level is stable, but another implementation (zlib-ng) may differ,
so across machines compare content hashes of the unpacked folder, not archive digests.

`unpack` treats the archive as hostile. `tarfile.extractall(filter="data")` would refuse links out of the
folder and devices, but it still admits links inside it, trusts the headers' sizes, reads a pax header of any
size into memory and, at a corrupt header after the first, silently ends the archive there. So the archive is
read here, block by block: `tarfile.TarInfo.frombuf` parses one 512-byte header (checksum, numbers, ustar
name), everything else (pax records, member types, names, sizes, counts, what follows the end marker) is
checked by this module. The gzip stream is inflated in pieces of at most `CHUNK` bytes and no more than the
headers account for (the data the headers declare, at most `max_bytes` together, the headers themselves, a
little padding) is ever inflated, so a decompression bomb costs neither memory nor much time. A first pass
checks every header before anything is written; the second writes what the first saw, with its own code
(`O_CREAT|O_EXCL|O_NOFOLLOW` below folders opened with `O_NOFOLLOW`), and stops at any difference. On any
refusal the destination folder is removed whole.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from harness.errors import SubmissionError, UploadError
from harness.formats.limits import clipped, size_text
from harness.submission import _files as submission_files

ARCHIVE_TYPE = "application/gzip"  # a gzip-compressed POSIX (ustar/pax) tar

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
CHUNK = 1 << 16  # the most bytes inflated, read or written at once
PAX_MAX = 16 * 1024  # the largest pax extended header accepted
PAX_IN_A_ROW = 4  # extended headers before one member
TRAILER_MAX = 1 << 20  # zeros accepted after the end-of-archive marker (tar pads to its record size)
MAX_NAME_BYTES = 4096
MAX_COMPONENT_BYTES = 255
GZIP_WBITS = 16 + zlib.MAX_WBITS
PAX_IGNORED = {"mtime", "atime", "ctime", "uid", "gid", "uname", "gname", "comment", "charset"}
FIX = "pack the project folder with the harness (`harness.uploads.pack`): regular files only"
REGULAR_TYPES = {tarfile.REGTYPE, tarfile.AREGTYPE}
REFUSED_TYPES = {
    tarfile.SYMTYPE: "a symbolic link",
    tarfile.LNKTYPE: "a hard link",
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a FIFO (named pipe)",
    tarfile.CONTTYPE: "a contiguous file",
    tarfile.GNUTYPE_SPARSE: "a sparse file",
    tarfile.GNUTYPE_LONGNAME: "a GNU long-name header",
    tarfile.GNUTYPE_LONGLINK: "a GNU long-link header",
}


# --- packing ---------------------------------------------------------------------------------------------------


def pack(project: Path) -> bytes:
    """The deterministic `.tar.gz` of the files `harness.submission` selects in `project` (see the module)."""
    project = Path(project)
    try:
        files = submission_files(project)
    except SubmissionError as exc:
        raise UploadError(exc.message, exc.hint) from exc
    if not files:
        raise UploadError(f"{project}: holds no files", "pack the folder that holds the submission's pyproject.toml")
    entries = sorted(((_packed_name(project, file), file) for file in files), key=lambda e: e[0].encode())
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as zipped,
        tarfile.TarFile(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar,
    ):
        for name, file in entries:
            _add(tar, name, file)
    return buffer.getvalue()


def _packed_name(project: Path, file: Path) -> str:
    name = file.relative_to(project).as_posix()
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UploadError(f"{project}: {clipped(name)}: the file's name is not UTF-8", "rename it") from None
    parts = _name_parts(name, str(project))
    if parts is None:
        raise UploadError(f"{project}: {clipped(name)}: an empty name")
    return "/".join(parts)


def _add(tar: tarfile.TarFile, name: str, file: Path) -> None:
    try:
        with file.open("rb") as stream:
            info = os.fstat(stream.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise UploadError(f"{file}: not a regular file", "a submission holds plain files; remove it")
            member = tarfile.TarInfo(name)
            member.type = tarfile.REGTYPE
            member.size = info.st_size
            member.mode = 0o755 if info.st_mode & stat.S_IXUSR else 0o644
            member.mtime = 0
            member.uid = member.gid = 0
            member.uname = member.gname = ""
            tar.addfile(member, stream)
    except OSError as exc:
        raise UploadError(f"{file}: cannot be packed ({exc.strerror or exc})", "is it changing? try again") from exc


def archive_digest(data: bytes) -> str:
    """The sha256 (hex) of an archive's bytes."""
    return hashlib.sha256(data).hexdigest()


# --- reading an untrusted archive --------------------------------------------------------------------------------


class _Inflater:
    """The decompressed bytes of a gzip file, in pieces of at most `CHUNK` bytes, refused past `budget` in all."""

    def __init__(self, stream: BinaryIO, label: str, budget: int):
        self._stream = stream
        self._label = label
        self._budget = budget
        self._z = zlib.decompressobj(GZIP_WBITS)
        self._input = b""
        self.total = 0

    def read(self, size: int) -> bytes:
        """Up to `size` (> 0) bytes; b"" only at the end of the last gzip member."""
        size = min(size, CHUNK)
        while True:
            if self._z.eof:
                rest = self._z.unused_data or self._stream.read(CHUNK)
                if not rest:
                    return b""
                self._z = zlib.decompressobj(GZIP_WBITS)  # another gzip member follows
                self._input = rest
            if not self._input:
                self._input = self._stream.read(CHUNK)
                if not self._input:
                    raise UploadError(f"{self._label}: the gzip stream is cut short", "upload the whole file")
            try:
                out = self._z.decompress(self._input, size)
            except zlib.error as exc:
                problem = "not a gzip-compressed tar archive" if not self.total else "a damaged gzip stream"
                raise UploadError(f"{self._label}: {problem} ({exc})", FIX) from None
            self._input = self._z.unconsumed_tail
            if out:
                self.total += len(out)
                if self.total > self._budget:
                    raise UploadError(
                        f"{self._label}: decompresses to more than {size_text(self._budget)} "
                        "(the size limit and the headers' overhead): a decompression bomb?",
                        FIX,
                    )
                return out


@dataclass(frozen=True)
class Member:
    """A member of an archive once checked: its normalised relative name, kind, size and executable bit."""

    name: str
    is_dir: bool
    size: int
    executable: bool


class _TarReader:
    """The members of a tar stream, one header at a time; each member's data is read through `data()` or
    skipped by the next `next()`."""

    def __init__(self, inflater: _Inflater, label: str):
        self._in = inflater
        self._label = label
        self._left = 0
        self._pad = 0
        self._last = ""  # the name of the last member read
        self.blocks = 0

    @property
    def _after(self) -> str:
        return f"after `{self._last}`" if self._last else "before the first member"

    def _exact(self, size: int, what: str) -> bytes:
        buf = bytearray()
        while len(buf) < size:
            chunk = self._in.read(size - len(buf))
            if not chunk:
                raise UploadError(f"{self._label}: the archive ends in the middle of {what}", "upload the whole file")
            buf += chunk
        return bytes(buf)

    def data(self) -> Iterator[bytes]:
        while self._left:
            chunk = self._in.read(min(self._left, CHUNK))
            if not chunk:
                raise UploadError(f"{self._label}: the archive ends in the middle of `{self._last}`'s data")
            self._left -= len(chunk)
            yield chunk

    def next(self) -> tuple[str, tarfile.TarInfo] | None:
        """The next member's raw name and header, pax records applied; None at the end of the archive."""
        for _ in self.data():
            pass
        if self._pad:
            self._exact(self._pad, f"`{self._last}`'s padding")
            self._pad = 0
        pax: dict[str, str] = {}
        for _ in range(PAX_IN_A_ROW + 1):
            info = self._header()
            if info is None:
                if pax:
                    raise UploadError(f"{self._label}: a pax header {self._after} ends the archive")
                return None
            if info.type not in (tarfile.XHDTYPE, tarfile.XGLTYPE):
                return self._member(info, pax)
            records = self._pax(info)
            if info.type == tarfile.XHDTYPE:
                pax.update(records)
        raise UploadError(f"{self._label}: more than {PAX_IN_A_ROW} pax headers in a row {self._after}")

    def _header(self) -> tarfile.TarInfo | None:
        first = self.blocks == 0
        block = self._in.read(BLOCK)
        if len(block) < BLOCK and block:
            block += self._exact(BLOCK - len(block), "a header")
        where = "the archive's first header" if first else f"the header {self._after}"
        if not block:
            raise UploadError(
                f"{self._label}: "
                + ("not a gzip-compressed tar archive (it is empty)" if first else f"no end marker after {where}"),
                "upload the whole file",
            )
        self.blocks += 1
        if block == ZERO_BLOCK:
            if first:
                raise UploadError(f"{self._label}: not a gzip-compressed tar archive (it is empty: only zeros)")
            self._trailer()
            return None
        problem = None
        if block[257:262] != b"ustar":
            problem = "no ustar magic"
        else:
            try:
                return tarfile.TarInfo.frombuf(block, "utf-8", "strict")
            except UnicodeDecodeError:
                problem = "a name that is not UTF-8"
            except tarfile.HeaderError as exc:
                problem = str(exc)
        if first:
            raise UploadError(f"{self._label}: not a gzip-compressed tar archive ({problem})", FIX)
        raise UploadError(f"{self._label}: {where} is corrupt ({problem}): does a header lie about its size?", FIX)

    def _trailer(self) -> None:
        """After the end marker: zeros only, at most `TRAILER_MAX` of them, up to the end of the gzip stream."""
        seen = 0
        while chunk := self._in.read(CHUNK):
            seen += len(chunk)
            if chunk.count(0) != len(chunk):
                raise UploadError(f"{self._label}: data after the end of the archive", FIX)
            if seen > TRAILER_MAX:
                raise UploadError(
                    f"{self._label}: more than {size_text(TRAILER_MAX)} of zeros after the end of the archive: "
                    "a decompression bomb?",
                    FIX,
                )

    def _pax(self, info: tarfile.TarInfo) -> dict[str, str]:
        if info.size > PAX_MAX:
            raise UploadError(f"{self._label}: a pax header of {info.size:,} bytes {self._after}", FIX)
        raw = self._exact(info.size, "a pax header")
        self._exact(-info.size % BLOCK, "a pax header's padding")
        records = _pax_records(raw, f"{self._label}: the pax header {self._after}")
        if info.type == tarfile.XGLTYPE and set(records) - PAX_IGNORED:
            raise UploadError(f"{self._label}: a global pax header sets {', '.join(sorted(records))}", FIX)
        return records

    def _member(self, info: tarfile.TarInfo, pax: dict[str, str]) -> tuple[str, tarfile.TarInfo]:
        name = pax.get("path", info.name)
        if "size" in pax:
            try:
                info.size = int(pax["size"])
            except ValueError:
                raise UploadError(f"{self._label}: `{clipped(name)}`: a pax size that is not a number") from None
        if info.size < 0:
            raise UploadError(f"{self._label}: `{clipped(name)}`: a negative size")
        self._last = clipped(name)
        self._left = info.size if info.type in REGULAR_TYPES else 0
        self._pad = -self._left % BLOCK
        return name, info


def _pax_records(raw: bytes, where: str) -> dict[str, str]:
    """`LENGTH KEYWORD=VALUE\\n` records; path and size are used, a few others ignored, the rest refused."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(raw):
        if raw[pos] == 0:  # tar's padding of the header's data
            if raw[pos:].count(0) != len(raw) - pos:
                raise UploadError(f"{where} is malformed", FIX)
            break
        space = raw.find(b" ", pos, pos + 12)
        try:
            if space <= pos or not raw[pos:space].isdigit() or pos + int(raw[pos:space]) > len(raw):
                raise ValueError
            length = int(raw[pos:space])
            record = raw[space + 1 : pos + length]
            keyword, value = record[:-1].split(b"=", 1)
            if record[-1:] != b"\n":
                raise ValueError
            key, text = keyword.decode("utf-8"), value.decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise UploadError(f"{where} is malformed", FIX) from None
        if key not in PAX_IGNORED and key not in ("path", "size") and not key.startswith(("SCHILY.", "LIBARCHIVE.")):
            raise UploadError(f"{where} sets `{clipped(key)}` (links, sparse files, binary names are refused)", FIX)
        if key.startswith(("SCHILY.", "LIBARCHIVE.")) and "sparse" in key:
            raise UploadError(f"{where} describes a sparse file", FIX)
        records[key] = text
        pos += length
    return records


def _name_parts(name: str, label: str) -> list[str] | None:
    """The components of a relative name, `.` and empty ones dropped; None for the root folder itself."""
    problem = None
    if not name:
        problem = "an empty name"
    elif "\0" in name:
        problem = "a NUL in its name"
    elif "\\" in name:
        problem = "a backslash in its name"
    elif name.startswith("/"):
        problem = "an absolute path"
    elif len(name.encode()) > MAX_NAME_BYTES:
        problem = f"a name of more than {MAX_NAME_BYTES} bytes"
    else:
        parts = [part for part in name.split("/") if part not in ("", ".")]
        if ".." in parts:
            problem = "a `..` component (a path out of the folder)"
        elif any(len(part.encode()) > MAX_COMPONENT_BYTES for part in parts):
            problem = f"a name with a component of more than {MAX_COMPONENT_BYTES} bytes"
        else:
            return parts or None
    raise UploadError(f"{label}: member `{clipped(name)}`: {problem}", FIX)


class _Checks:
    """What the members seen so far allow next: counts, sizes, names (no duplicate, no file under a file)."""

    def __init__(self, label: str, max_bytes: int, max_files: int):
        self.label = label
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.files: set[str] = set()
        self.dirs: set[str] = set()  # named or implied by a member below them
        self.named_dirs: set[str] = set()
        self.total = 0

    def member(self, name: str, info: tarfile.TarInfo) -> Member | None:
        where = f"{self.label}: member `{clipped(name)}`"
        if info.type in REFUSED_TYPES or info.sparse is not None:
            kind = REFUSED_TYPES.get(info.type, "a sparse file")
            target = f" to `{clipped(info.linkname)}`" if info.issym() or info.islnk() else ""
            raise UploadError(f"{where}: {kind}{target}", f"an upload holds regular files and folders only; {FIX}")
        if info.type not in REGULAR_TYPES and info.type != tarfile.DIRTYPE:
            raise UploadError(f"{where}: an unknown member type {info.type!r}", FIX)
        is_dir = info.type == tarfile.DIRTYPE or (info.type == tarfile.AREGTYPE and name.endswith("/"))
        if not is_dir and name.endswith("/"):
            raise UploadError(f"{where}: a file whose name ends in `/`", FIX)
        parts = _name_parts(name.rstrip("/") if is_dir else name, self.label)
        if parts is None:
            if is_dir:
                return None  # `./`: the folder itself
            raise UploadError(f"{where}: an empty name", FIX)
        path = "/".join(parts)
        if is_dir and info.size:
            raise UploadError(f"{where}: a folder with {info.size:,} bytes of data", FIX)
        self._place(path, parts, is_dir, where)
        if is_dir:
            self.named_dirs.add(path)
            if len(self.named_dirs) > self.max_files:
                raise UploadError(f"{self.label}: more than {self.max_files:,} folders", FIX)
            return Member(path, True, 0, False)
        self.total += info.size
        if len(self.files) > self.max_files:
            raise UploadError(
                f"{self.label}: more than {self.max_files:,} files (at `{clipped(path)}`)",
                "leave data sets and build outputs out of the project",
            )
        if self.total > self.max_bytes:
            raise UploadError(
                f"{where}: the files' sizes add up to more than {size_text(self.max_bytes)}",
                "leave large files (data, checkpoints) out of the project",
            )
        return Member(path, False, info.size, bool(info.mode & 0o100))

    def _place(self, path: str, parts: list[str], is_dir: bool, where: str) -> None:
        if path in self.files or path in self.named_dirs:
            raise UploadError(f"{where}: a duplicate of an earlier member `{clipped(path)}`", FIX)
        if not is_dir and path in self.dirs:
            raise UploadError(f"{where}: a file where an earlier member has a folder", FIX)
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in self.files:
                raise UploadError(f"{where}: its parent `{clipped(parent)}` is a file", FIX)
            self.dirs.add(parent)
        (self.dirs if is_dir else self.files).add(path)


def _members(stream: BinaryIO, label: str, max_bytes: int, max_files: int) -> Iterator[tuple[Member, _TarReader]]:
    """Every member of the archive, checked; the reader gives the data of the member just yielded."""
    overhead = (2 * max_files + 1) * (PAX_IN_A_ROW * (PAX_MAX + BLOCK) + 2 * BLOCK) + TRAILER_MAX + 2 * BLOCK
    reader = _TarReader(_Inflater(stream, label, max_bytes + overhead), label)
    checks = _Checks(label, max_bytes, max_files)
    while (item := reader.next()) is not None:
        member = checks.member(*item)
        if member is not None:
            yield member, reader


# --- unpacking ---------------------------------------------------------------------------------------------------


def unpack(archive: Path, dest: Path, max_bytes: int, max_files: int, max_archive_bytes: int | None = None) -> int:
    """Unpack the untrusted `archive` into the new folder `dest`; return its number of files. Every header is
    checked before anything is written; on any refusal or fault `dest` is removed and `UploadError` raised."""
    archive, dest = Path(archive), Path(dest)
    label = archive.name
    if os.path.lexists(dest):
        raise UploadError(f"{dest}: already exists", "unpack into a folder that does not exist yet")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(dest, 0o755)
    except OSError as exc:
        raise UploadError(f"{dest}: cannot be created ({exc.strerror or exc})") from exc
    try:
        with _open_archive(archive, label, max_archive_bytes) as stream:
            plan = [member for member, _ in _members(stream, label, max_bytes, max_files)]
            stream.seek(0)
            return _extract(stream, label, dest, plan, max_bytes, max_files)
    except UploadError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    except Exception as exc:  # a fault of the disk or of this code: still nothing left behind
        shutil.rmtree(dest, ignore_errors=True)
        raise UploadError(f"{label}: cannot be unpacked ({type(exc).__name__}: {clipped(str(exc))})") from exc
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def _open_archive(archive: Path, label: str, max_archive_bytes: int | None) -> BinaryIO:
    try:
        stream = archive.open("rb")
    except OSError as exc:
        raise UploadError(f"{archive}: cannot be read ({exc.strerror or exc})") from exc
    try:
        info = os.fstat(stream.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UploadError(f"{label}: not a regular file")
        if max_archive_bytes is not None and info.st_size > max_archive_bytes:
            raise UploadError(
                f"{label}: {size_text(info.st_size)}, more than the {size_text(max_archive_bytes)} an upload may be",
                "leave large files (data, checkpoints) out of the project",
            )
        magic = stream.read(2)
        if magic != b"\x1f\x8b":
            problem = "it is empty" if not magic else "no gzip magic"
            raise UploadError(f"{label}: not a gzip-compressed tar archive ({problem})", FIX)
        stream.seek(0)
        return stream
    except BaseException:
        stream.close()
        raise


def _extract(stream: BinaryIO, label: str, dest: Path, plan: list[Member], max_bytes: int, max_files: int) -> int:
    """Write the members the first pass checked; any difference from that pass is a refusal."""
    root = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    written = files = seen = 0
    try:
        for member, reader in _members(stream, label, max_bytes, max_files):
            seen += 1
            if seen > len(plan) or plan[seen - 1] != member:
                raise UploadError(f"{label}: member `{clipped(member.name)}` changed while it was unpacked")
            parent = _folder(root, member.name.split("/")[:-1] if not member.is_dir else member.name.split("/"))
            try:
                if not member.is_dir:
                    written += _write(parent, member, reader, label, max_bytes - written)
                    files += 1
            finally:
                os.close(parent)
        if seen != len(plan):
            raise UploadError(f"{label}: the archive changed while it was unpacked")
    finally:
        os.close(root)
    return files


def _folder(root: int, parts: list[str]) -> int:
    """A descriptor of the folder `parts` below `root`, made where missing; never through a link."""
    fd = os.dup(root)
    try:
        for part in parts:
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
                made = True
            except FileExistsError:
                made = False
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = child
            if made:
                os.fchmod(fd, 0o755)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _write(parent: int, member: Member, reader: _TarReader, label: str, allowed: int) -> int:
    """Write one file's data (never more than its header's size, nor than `allowed`); return the bytes written."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(member.name.rsplit("/", 1)[-1], flags, 0o644, dir_fd=parent)
    written = 0
    try:
        for chunk in reader.data():
            written += len(chunk)
            if written > member.size or written > allowed:
                raise UploadError(f"{label}: member `{clipped(member.name)}` holds more data than its header says")
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        os.fchmod(fd, 0o755 if member.executable else 0o644)
    finally:
        os.close(fd)
    return written
