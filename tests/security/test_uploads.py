"""Project archives for the submission server: `pack` is deterministic and round-trips to the same content hash;
`unpack` refuses every hostile archive (paths out of the folder, links, devices, lying headers, bombs, too many
or too large members, duplicates, what is not a gzip-compressed tar), leaves nothing behind and writes nothing
outside its folder, in bounded memory."""

from __future__ import annotations

import gzip
import io
import os
import struct
import tarfile
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import pytest

from harness.errors import UploadError
from harness.submission import content_hash
from harness.uploads import ARCHIVE_TYPE, _Inflater, archive_digest, pack, unpack
from tests.conftest import make_submission

MIB = 1 << 20


def _tgz(*members: tuple[tarfile.TarInfo, bytes | None], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A gzip-compressed tar of the given headers, each with its data (None: none)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return gzip.compress(raw.getvalue(), mtime=0)


def _file(name: str, data: bytes = b"x = 1\n", **fields) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in fields.items():
        setattr(info, key, value)
    return info, data


def _special(name: str, kind: bytes, **fields) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in fields.items():
        setattr(info, key, value)
    return info, None


def _refused(tmp_path: Path, data: bytes, *fragments: str, max_bytes: int = MIB, max_files: int = 100, **kw) -> str:
    """Unpack `data` and expect a refusal naming each fragment; nothing may be left in or beside `dest`."""
    archive = tmp_path / "upload.tar.gz"
    archive.write_bytes(data)
    dest = tmp_path / "unpacked"
    with pytest.raises(UploadError) as caught:
        unpack(archive, dest, max_bytes, max_files, **kw)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    assert not dest.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["upload.tar.gz"], "something was written outside dest"
    return message


# --- packing ---------------------------------------------------------------------------------------------------


def test_pack_is_deterministic_and_ignores_times_and_permissions_other_than_exec(tmp_path: Path):
    project = make_submission(tmp_path)
    (project / "tiny_pkg" / "weights.bin").write_bytes(os.urandom(3000))
    (project / "__pycache__").mkdir()
    (project / "__pycache__" / "x.pyc").write_bytes(b"ignored")
    first = pack(project)
    assert pack(project) == first
    for file in [project / "pyproject.toml", project / "tiny_pkg" / "__init__.py"]:
        os.utime(file, (1_000_000_000, 1_234_567_890))
        file.chmod(0o600)
    assert pack(project) == first
    assert archive_digest(first) == archive_digest(pack(project)) and len(archive_digest(first)) == 64
    assert first[:2] == b"\x1f\x8b" and first[4:8] == b"\0\0\0\0" and ARCHIVE_TYPE == "application/gzip"

    with tarfile.open(fileobj=io.BytesIO(first), mode="r:gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["pyproject.toml", "tiny_pkg/__init__.py", "tiny_pkg/weights.bin"]
    assert all(m.isreg() and m.mode == 0o644 and m.mtime == 0 and (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", "")
               for m in members)  # fmt: skip

    (project / "tiny_pkg" / "weights.bin").chmod(0o755)
    executable = pack(project)
    assert executable != first
    with tarfile.open(fileobj=io.BytesIO(executable), mode="r:gz") as tar:
        assert tar.getmember("tiny_pkg/weights.bin").mode == 0o755


def test_pack_then_unpack_gives_the_same_content_hash(tmp_path: Path):
    project = make_submission(tmp_path / "src")
    (project / "tiny_pkg" / "deep" / "er").mkdir(parents=True)
    (project / "tiny_pkg" / "deep" / "er" / "run.sh").write_text("#!/bin/sh\n")
    (project / "tiny_pkg" / "deep" / "er" / "run.sh").chmod(0o755)
    (project / "tiny_pkg" / "é-naïve.txt").write_text("utf-8 names\n")
    (project / "tiny_pkg" / ("long" * 40 + ".txt")).write_text("a name over 100 characters: a pax header\n")
    archive = tmp_path / "project.tar.gz"
    archive.write_bytes(pack(project))
    dest = tmp_path / "server" / "unpacked"
    assert unpack(archive, dest, MIB, 100, max_archive_bytes=MIB) == 5
    assert content_hash(dest) == content_hash(project)
    assert (dest / "tiny_pkg" / "deep" / "er" / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (dest / "pyproject.toml").stat().st_mode & 0o777 == 0o644
    assert pack(dest) == pack(project)


def test_pack_stores_what_the_selection_follows_and_refuses_what_it_refuses(tmp_path, monkeypatch):
    project = make_submission(tmp_path)
    (tmp_path / "outside.txt").write_text("followed, like content_hash follows it\n")
    (project / "link.txt").symlink_to(tmp_path / "outside.txt")
    with tarfile.open(fileobj=io.BytesIO(pack(project)), mode="r:gz") as tar:
        assert tar.getmember("link.txt").isreg()
    (tmp_path / "empty").mkdir()
    with pytest.raises(UploadError, match="holds no files"):
        pack(tmp_path / "empty")
    monkeypatch.setenv("HARNESS_MAX_SUBMISSION_FILES", "2")
    with pytest.raises(UploadError, match="more than 2 files"):
        pack(project)
    monkeypatch.delenv("HARNESS_MAX_SUBMISSION_FILES")
    os.mkfifo(project / "pipe")
    with pytest.raises(UploadError, match="not a regular file"):
        pack(project)


def test_an_ordinary_tar_with_folder_entries_is_accepted(tmp_path: Path):
    project = make_submission(tmp_path / "src")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
        tar.add(project, arcname=".")  # `./`, `./tiny_pkg/`, ... as `tar -C project -czf` writes them
    archive = tmp_path / "by-hand.tar.gz"
    archive.write_bytes(raw.getvalue())
    assert unpack(archive, tmp_path / "out", MIB, 10) == 2
    assert content_hash(tmp_path / "out") == content_hash(project)


# --- hostile archives ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("../evil.py", "`..`"),
        ("a/../../evil", "`..`"),
        ("/etc/cron.d/x", "absolute path"),
        ("a\\..\\..\\evil.py", "backslash"),
        ("a/" + "x" * 256, "more than 255 bytes"),
        ("/".join(["d" * 200] * 21), "more than 4096 bytes"),
    ],
)
def test_paths_out_of_the_folder_and_odd_names_are_refused(tmp_path: Path, name: str, fragment: str):
    message = _refused(tmp_path, _tgz(_file("ok.py"), _file(name)), fragment)
    assert "member `" in message
    assert not (tmp_path / "evil.py").exists() and not (tmp_path / "evil").exists()
    assert not Path("/etc/cron.d/x").exists()


def test_a_nul_in_a_pax_path_and_a_file_named_like_a_folder_are_refused(tmp_path: Path):
    info, data = _file("plain")
    info.pax_headers = {"path": "a\0b"}
    _refused(tmp_path, _tgz((info, data)), "NUL")
    info, data = _file("x/")
    info.type = tarfile.REGTYPE
    _refused(tmp_path, _tgz((info, data)), "ends in `/`")


@pytest.mark.parametrize(
    ("member", "fragments"),
    [
        (_special("passwd", tarfile.SYMTYPE, linkname="/etc/passwd"), ["symbolic link", "/etc/passwd"]),
        (_special("shadow", tarfile.LNKTYPE, linkname="ok.py"), ["hard link"]),
        (_special("tty", tarfile.CHRTYPE, devmajor=5, devminor=0), ["character device"]),
        (_special("disk", tarfile.BLKTYPE, devmajor=8, devminor=0), ["block device"]),
        (_special("pipe", tarfile.FIFOTYPE), ["FIFO"]),
    ],
    ids=["symlink", "hardlink", "chardev", "blockdev", "fifo"],
)
def test_links_and_devices_are_refused(tmp_path: Path, member, fragments):
    _refused(tmp_path, _tgz(_file("ok.py"), member), "member `", *fragments)


def test_gnu_long_names_and_sparse_files_are_refused(tmp_path: Path):
    long = _tgz(_file("n" * 150), fmt=tarfile.GNU_FORMAT)  # a GNU `L` header carries the name
    _refused(tmp_path, long, "GNU long-name header")
    info, data = _file("holes")
    info.pax_headers = {"GNU.sparse.map": "0,1"}
    _refused(tmp_path, _tgz((info, data)), "GNU.sparse.map")


def test_declared_sizes_over_the_limit_are_refused_before_any_data_is_read(tmp_path: Path):
    big = tarfile.TarInfo("huge.bin")
    big.size = 10 * (1 << 30)  # declared only: the data is never reached
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_file("ok.py")[0], io.BytesIO(b"x = 1\n"))
        raw.write(big.tobuf(tarfile.PAX_FORMAT))
    _refused(tmp_path, gzip.compress(raw.getvalue()), "huge.bin", "more than 1.0 MiB")
    many = [_file(f"f{i}.bin", bytes(300 * 1024)) for i in range(4)]  # 1.2 MiB in all
    _refused(tmp_path, _tgz(*many), "f3.bin", "add up to more than 1.0 MiB")


def _lying(declared: int, actual: int) -> bytes:
    """A tar whose one member holds `actual` bytes but whose header (checksum fixed) declares `declared`."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info, data = _file("liar.bin", b"A" * actual)
        tar.addfile(info, io.BytesIO(data))
    header = bytearray(raw.getvalue()[:512])
    header[124:136] = b"%011o\0" % declared
    header[148:156] = b"        "
    header[148:156] = b"%06o\0 " % sum(header)
    return gzip.compress(bytes(header) + raw.getvalue()[512:])


def test_a_header_lying_about_its_size_is_caught(tmp_path: Path):
    _refused(tmp_path, _lying(declared=10, actual=5000), "corrupt", "liar.bin")  # its data read as a header
    _refused(tmp_path, _lying(declared=50_000, actual=5000), "ends in the middle", "liar.bin")


def _zeros_gzip(path: Path, total: int, piece: int = MIB) -> None:
    """`total` zero bytes, gzip-compressed and written piece by piece (each deflated on its own after a full
    flush, so one compressed piece serves for all): about 1 KiB per MiB, in little memory and time."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = deflate.compress(bytes(piece)) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    with path.open("wb") as out:
        out.write(b"\x1f\x8b\x08\x00\0\0\0\0\x02\xff")
        for _ in range(total // piece):
            out.write(block)
            crc = zlib.crc32(bytes(piece), crc)
        out.write(deflate.flush(zlib.Z_FINISH) + struct.pack("<II", crc, total & 0xFFFFFFFF))


def test_a_gzip_bomb_is_stopped_early_in_bounded_memory(tmp_path: Path):
    bomb = tmp_path / "bomb.gz"
    _zeros_gzip(bomb, 1 << 30)  # 1 GiB of zeros in about 1 MiB
    assert bomb.stat().st_size < 2 * MIB
    zeros = bomb.read_bytes()
    bomb.unlink()
    _refused(tmp_path, zeros, "not a gzip-compressed tar archive (it is empty: only zeros)")
    # a real member, then (a second gzip member) 1 GiB of zeros: the end marker and a bomb behind it
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info, member = _file("a.py")
        tar.addfile(info, io.BytesIO(member))
    data = gzip.compress(raw.getvalue()[:1024]) + zeros
    tracemalloc.start()
    try:
        _refused(tmp_path, data, "decompression bomb", max_bytes=64 * MIB, max_files=10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * MIB, f"unpacking a bomb took {peak / MIB:.1f} MiB"

    # the inflater's own budget: however the tar stream looks, no more than the budget is ever inflated
    (tmp_path / "upload.tar.gz").write_bytes(data)
    with (tmp_path / "upload.tar.gz").open("rb") as stream:
        inflater = _Inflater(stream, "bomb.gz", budget=8 * MIB)
        with pytest.raises(UploadError, match="decompresses to more than 8.0 MiB"):
            while inflater.read(1 << 16):
                pass
        assert inflater.total <= 8 * MIB + (1 << 16)


def test_too_many_members_are_refused(tmp_path: Path):
    members = [_file(f"d{i % 10}/f{i}.py", b"") for i in range(10_000)]
    _refused(tmp_path, _tgz(*members), "more than 1,000 files", max_files=1000)
    folders = [_special(f"d{i}", tarfile.DIRTYPE) for i in range(20)]
    _refused(tmp_path, _tgz(*folders), "more than 10 folders", max_files=10)


@pytest.mark.parametrize(
    ("names", "fragment"),
    [
        (["a.py", "a.py"], "duplicate"),
        (["./a.py", "a.py"], "duplicate"),
        (["pkg//a.py", "pkg/a.py"], "duplicate"),
        (["a", "a/b.py"], "parent `a` is a file"),
        (["a/b.py", "a"], "a file where an earlier member has a folder"),
    ],
)
def test_duplicates_and_files_under_files_are_refused(tmp_path: Path, names: list[str], fragment: str):
    _refused(tmp_path, _tgz(*[_file(name) for name in names]), fragment)


@pytest.mark.parametrize(
    "data",
    [b"", os.urandom(4096), gzip.compress(os.urandom(4096)), gzip.compress(b"not a tar " * 100), bytes(1024)],
    ids=["empty", "random", "gzip-of-random", "gzip-of-text", "zeros"],
)
def test_what_is_not_a_gzip_compressed_tar_is_refused(tmp_path: Path, data: bytes):
    _refused(tmp_path, data, "not a gzip-compressed tar archive")


def test_a_zip_file_is_refused(tmp_path: Path):
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as archive:
        archive.writestr("a.py", "x = 1\n")
    _refused(tmp_path, raw.getvalue(), "not a gzip-compressed tar archive")


def test_damage_after_the_members_is_refused(tmp_path: Path):
    good = _tgz(_file("a.py"))
    _refused(tmp_path, good[:-20], "cut short")
    raw = gzip.decompress(good)
    _refused(tmp_path, gzip.compress(raw + b"junk" * 100), "data after the end of the archive")
    _refused(tmp_path, good + b"trailing garbage", "a damaged gzip stream")
    _refused(tmp_path, gzip.compress(raw[:600]), "ends in the middle")


def test_the_archive_size_limit_and_an_existing_destination(tmp_path: Path):
    data = _tgz(_file("a.py", os.urandom(5000)))
    _refused(tmp_path, data, "more than the 1,000 bytes", max_archive_bytes=1000)
    archive = tmp_path / "upload.tar.gz"
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    with pytest.raises(UploadError, match="already exists"):
        unpack(archive, existing, MIB, 10)
    assert (existing / "keep.txt").read_text() == "mine"


def test_an_archive_that_changes_between_the_check_and_the_writing_is_refused(tmp_path, monkeypatch):
    """The second pass writes only what the first checked: a member whose header changed is refused there."""
    import harness.uploads as uploads

    first, second = _tgz(_file("a.py", b"small")), _tgz(_file("a.py", b"bigger than it was"))

    class Swapping(io.BytesIO):
        def seek(self, *args):
            if self.tell():  # the rewind before the writing pass: the attacker swaps the file
                self.__init__(second)
            return super().seek(*args)

    monkeypatch.setattr(uploads, "_open_archive", lambda *a: Swapping(first))
    _refused(tmp_path, first, "changed while it was unpacked")


@pytest.mark.parametrize(
    ("records", "fragment"),
    [
        (b"99 path=x\n", "is malformed"),
        (b"1_2 path=x\n", "is malformed"),
        (b"17 linkpath=/etc\n", "sets `linkpath`"),
        (b"21 hdrcharset=BINARY\n", "sets `hdrcharset`"),
    ],
)
def test_malformed_or_refused_pax_records(tmp_path: Path, records: bytes, fragment: str):
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type = tarfile.XHDTYPE
    pax.size = len(records)
    _refused(tmp_path, _tgz((pax, records), _file("a.py")), fragment)


def test_a_global_pax_header_may_only_carry_what_is_ignored(tmp_path: Path):
    comment = b"52 comment=b7f3a1c0d2e4f6a8b0c2d4e6f8a0b2c4d6e8a0b2\n"
    header = tarfile.TarInfo("pax_global_header")  # as `git archive` writes one
    header.type = tarfile.XGLTYPE
    header.size = len(comment)
    archive = tmp_path / "git.tar.gz"
    archive.write_bytes(_tgz((header, comment), _file("a.py")))
    assert unpack(archive, tmp_path / "out", MIB, 10) == 1
    archive.unlink()
    header.size = len(b"13 path=evil\n")
    (tmp_path / "second").mkdir()
    _refused(tmp_path / "second", _tgz((header, b"13 path=evil\n"), _file("a.py")), "global pax header sets path")
