"""A downloaded archive (.tgz / .tar.gz) or its extracted folder, read the same way by every data preparer."""
import tarfile
import zlib
from pathlib import Path

from tqdm import tqdm

from utils.errors import UserError
from utils.provenance import fingerprint

_READ_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)


class Source:
    """The files of a .tgz / .tar.gz archive or of its extracted folder, by their path inside it."""

    def __init__(self, path: Path, flag: str, hint: str, kind: str = ".tgz / .tar.gz archive"):
        self.path, self.flag = path, flag
        if not path.exists():
            raise UserError(f"{flag} {path} does not exist; {hint}.")
        self._tar = None
        if path.is_dir():
            self.files = {file.relative_to(path).as_posix(): file for file in path.rglob("*") if file.is_file()}
            return
        try:
            self._tar = tarfile.open(path, "r:gz")      # every archive the preparers read is gzipped
            self.files = {member.name.removeprefix("./"): member for member in self._tar if member.isfile()}
        except _READ_ERRORS as err:
            self.close()
            raise UserError(f"{flag} {path} is not a readable {kind} ({_reason(err)}); {hint}.") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._tar is not None:
            self._tar.close()

    def prefix_of(self, anchor: str) -> str | None:
        """The folder path ('' or 'CUB_200_2011/', ...) under which the file or folder `anchor` ('images.txt',
        'jpg/') lies, the shortest when several do; None when the source has none."""
        prefixes = set()
        for name in self.files:
            if anchor.endswith("/"):
                at = ("/" + name).find("/" + anchor)
                if at >= 0:
                    prefixes.add(name[:at])
            elif ("/" + name).endswith("/" + anchor):
                prefixes.add(name[:len(name) - len(anchor)])
        return min(prefixes, key=len) if prefixes else None

    def read_file(self, name: str) -> bytes:
        return next(self._read([name]))[1]

    def read(self, names, desc: str):
        """(name, bytes) of each of `names`, in the order they are stored: a gzip stream reads fast only forward."""
        if self._tar is not None:
            names = sorted(names, key=lambda name: self.files[name].offset_data)
        yield from self._read(tqdm(names, desc=desc, unit="file"))

    def _read(self, names):
        for name in names:
            try:
                if self._tar is None:
                    yield name, self.files[name].read_bytes()
                else:
                    yield name, self._tar.extractfile(self.files[name]).read()
            except _READ_ERRORS as err:
                raise UserError(f"{self.flag} {self.path} is damaged at {name} ({_reason(err)}); "
                                "download it again.") from None

    def identity(self) -> dict:
        """What the marker records of this input: the archive's name and fingerprint, or the folder's name."""
        if self._tar is None:
            return {"folder": self.path.name}
        return {"file": self.path.name, "sha256_16": fingerprint(self.path)}


def _reason(err) -> str:
    return " ".join(str(err).split()) or type(err).__name__
