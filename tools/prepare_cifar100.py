"""Turn the standard CIFAR-100 python archive into the folder layout the cifar100 config reads.

    python -m tools.prepare_cifar100 --archive cifar-100-python.tar.gz [--out data/cifar100_org]

Writes <out>/{train,test}/<superclass>/<class>/<index>.png, names taken from the archive's own
`meta` file (coarse_label_names, fine_label_names); <index> is the image's position in its split.
`--archive` may also be the extracted `cifar-100-python` folder. The archive's pickles are read
with an unpickler that only builds plain containers and numpy arrays, so a tampered file cannot
run code.
"""
import io
import pickle
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from tools.archive import Source
from tools.group_layout import add_output_args, output_folder, say_prepared
from utils.cli import ArgumentParser
from utils.errors import UserError, run_main
from utils.records import COMPLETE_MARKER as MARKER, completion_record, mark_complete

MEMBERS = ("train", "test", "meta")
_SAFE_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed")


def _unpickle(raw: bytes, label: str) -> dict:
    try:
        obj = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as err:  # any failure means "not a CIFAR pickle"
        raise UserError(f"{label} is not a CIFAR-100 python pickle ({err}).") from None
    if not isinstance(obj, dict):
        raise UserError(f"{label} is not a CIFAR-100 python pickle (expected a dict).")
    # The official files have bytes keys; accept str keys too.
    return {key.decode() if isinstance(key, bytes) else key: value for key, value in obj.items()}


def read_members(archive: Path) -> dict[str, bytes]:
    """The raw bytes of train, test and meta from a .tar.gz or an extracted folder."""
    hint = "download cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html"
    with Source(archive, "--archive", hint, kind=".tar.gz archive") as source:
        prefix = next((found for m in MEMBERS if (found := source.prefix_of(m)) is not None), "")
        missing = [m for m in MEMBERS if prefix + m not in source.files]
        if missing:
            raise UserError(f"{archive} is not the CIFAR-100 python archive: it has no {', '.join(missing)} file "
                            "(did you download the CIFAR-10 or binary version?).")
        return {name[len(prefix):]: raw for name, raw in source.read([prefix + m for m in MEMBERS], "archive")}


def _names(meta: dict, key: str, count: int) -> list[str]:
    names = meta.get(key)
    if not isinstance(names, list) or len(names) != count:
        raise UserError(f"The archive's meta file has no {count} {key}; is it CIFAR-100?")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def split_arrays(split: dict, label: str):
    """(images N x 32 x 32 x 3 uint8, fine labels, coarse labels) of one split pickle."""
    missing = [k for k in ("data", "fine_labels", "coarse_labels") if k not in split]
    if missing:
        raise UserError(f"{label} lacks {', '.join(missing)}; is the archive CIFAR-100 (not CIFAR-10)?")
    data = np.asarray(split["data"])
    fine, coarse = np.asarray(split["fine_labels"]), np.asarray(split["coarse_labels"])
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or not len(data) == len(fine) == len(coarse):
        raise UserError(f"{label} has data of shape {data.shape}; expected N x 3072 with one label each.")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.uint8), fine, coarse


def prepare(archive: Path, out: Path, force: bool = False) -> bool:
    """Write the folder layout; False when `out` is already complete."""
    if not force and completion_record(out) is not None:
        return False
    members = read_members(archive)
    meta = _unpickle(members["meta"], f"{archive}: meta")
    fine_names = _names(meta, "fine_label_names", 100)
    coarse_names = _names(meta, "coarse_label_names", 20)
    arrays = {s: split_arrays(_unpickle(members[s], f"{archive}: {s}"), f"{archive}: {s}") for s in ("train", "test")}
    for s, (_, fine, coarse) in arrays.items():
        if fine.min() < 0 or fine.max() >= 100 or coarse.min() < 0 or coarse.max() >= 20:
            raise UserError(f"{archive}: {s} has labels outside 0-99 / 0-19; is it CIFAR-100?")
    (out / MARKER).unlink(missing_ok=True)
    for s in arrays:
        shutil.rmtree(out / s, ignore_errors=True)
    total = sum(len(images) for images, _, _ in arrays.values())
    with tqdm(total=total, desc="cifar100", unit="img") as bar:
        for s, (images, fine, coarse) in arrays.items():
            for index, (image, f, c) in enumerate(zip(images, fine, coarse)):
                folder = out / s / coarse_names[c] / fine_names[f]
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(folder / f"{index}.png")
                bar.update()
    mark_complete(out, {"source": archive.name})
    return True


def get_args_parser():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, required=True,
                        help="cifar-100-python.tar.gz or its extracted folder")
    add_output_args(parser, "cifar100_org")
    return parser


def main(args):
    out = output_folder(args, "cifar100_org")
    say_prepared(prepare(args.archive, out, args.force), out, "CIFAR-100")
    return 0


if __name__ == "__main__":
    run_main(main, get_args_parser)
