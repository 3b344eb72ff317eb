"""Building blocks of the fake downloads the preparation tests write themselves (nothing is downloaded)."""
import io
import tarfile
from pathlib import Path

from PIL import Image


def tiny_jpeg(colour, size=(4, 4)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_tar(path, members, drop=(), replace=None):
    """A .tgz of `members` ({name: bytes}), with `replace` overriding some and names under `drop` left out."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, raw in {**members, **(replace or {})}.items():
            if any(name.startswith(d) for d in drop):
                continue
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


def listing(folder: Path) -> dict[str, list[str]]:
    """{class folder: sorted file stems} of one group folder."""
    return {c.name: sorted(f.stem for f in c.iterdir()) for c in sorted(folder.iterdir())}
