"""Turn Debian's Fashion-MNIST into the fashion config's layout: six image tasks of five kinds of clothing.

    apt-get install dataset-fashion-mnist
    python -m tools.prepare_fashion --fashion /usr/share/datasets/fashion-mnist [--out data/fashion]

--fashion is the folder of the four IDX files (train and t10k, images and labels, gzipped); nothing is
downloaded. Zalando's product photos are 28x28 grey, light on dark, ten kinds. The ten are split into two tasks
of five in three ways: "tops" (t-shirt, pullover, dress, coat, shirt) and "rest"; "even" and "odd" labels;
"low" (0-4) and "high" (5-9). Every kind's images are cut into thirds (seeded), one per way, so tasks share
kinds but no image. A task takes 200 test images a kind from t10k and 400 train images a kind from train, or
20 for the few-shot tasks (tops, odd, high), each of which shares four kinds with a task that has 400.
"""
import gzip
import zlib
from pathlib import Path

import numpy as np

from tools.group_layout import SPLIT_SEED, add_output_args, output_folder, samples_line, say_prepared, write_grey_images
from utils.cli import ArgumentParser
from utils.errors import UserError, run_main
from utils.records import completion_record

KINDS = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
WAYS = ({"tops": (0, 2, 3, 4, 6), "rest": (1, 5, 7, 8, 9)},
        {"even": (0, 2, 4, 6, 8), "odd": (1, 3, 5, 7, 9)},
        {"low": (0, 1, 2, 3, 4), "high": (5, 6, 7, 8, 9)})
FEW_SHOT = ("tops", "odd", "high")
TRAIN_PER_KIND, FEW_PER_KIND, TEST_PER_KIND = 400, 20, 200
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
IMAGES_MAGIC, LABELS_MAGIC, SIDE = 2051, 2049, 28
HINT = "install Debian's dataset-fashion-mnist and pass /usr/share/datasets/fashion-mnist"


def read_idx(path: Path, magic: int) -> np.ndarray:
    """The uint8 array of a gzipped IDX file (a big-endian header: magic, then each dimension's size)."""
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as err:
        raise UserError(f"--fashion: {path} cannot be read as a gzipped IDX file ({err}); {HINT}.") from None
    dims = magic & 0xFF
    header = np.frombuffer(raw[:4 + 4 * dims], dtype=">u4") if len(raw) >= 4 + 4 * dims else np.zeros(1)
    shape = tuple(int(n) for n in header[1:])
    if header[0] != magic or len(raw) != 4 + 4 * dims + int(np.prod(shape)):
        raise UserError(f"--fashion: {path} is not an IDX file of {dims}-dimensional uint8 data; {HINT}.")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def read_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images N x 28 x 28, labels N) of Fashion-MNIST's train or t10k files."""
    images_file, labels_file = FILES[split]
    images, labels = read_idx(folder / images_file, IMAGES_MAGIC), read_idx(folder / labels_file, LABELS_MAGIC)
    if images.shape[1:] != (SIDE, SIDE) or len(images) != len(labels) or labels.max(initial=0) >= len(KINDS):
        raise UserError(f"--fashion: {images_file} and {labels_file} do not hold 28x28 images with one label of "
                        f"0-9 each; {HINT}.")
    return images, labels


def thirds(labels: np.ndarray, split: str) -> dict[int, list[np.ndarray]]:
    """Every kind's rows cut into three seeded, disjoint thirds, one per way of splitting the kinds."""
    cut = {}
    for kind in range(len(KINDS)):
        rows = np.flatnonzero(labels == kind)
        rng = np.random.default_rng([SPLIT_SEED, zlib.crc32(f"{split} {kind}".encode())])
        cut[kind] = np.array_split(rows[rng.permutation(len(rows))], len(WAYS))
    return cut


def layout(labels_by_split: dict[str, np.ndarray]) -> list[tuple[str, str, int, int]]:
    """(split, task, kind, row) of every image a task uses."""
    samples = []
    for split, labels in labels_by_split.items():
        cut = thirds(labels, split)
        for way, tasks in enumerate(WAYS):
            for task, kinds in tasks.items():
                wanted = TEST_PER_KIND if split == "test" else FEW_PER_KIND if task in FEW_SHOT else TRAIN_PER_KIND
                for kind in kinds:
                    rows = cut[kind][way]
                    if len(rows) < wanted:
                        raise UserError(f"Fashion-MNIST's {split} split has {len(rows)} images of {KINDS[kind]} "
                                        f"for the task {task} ({wanted} needed); {HINT}.")
                    samples += [(split, task, kind, int(row)) for row in sorted(rows[:wanted])]
    return samples


def prepare(fashion: Path, out: Path, force: bool = False) -> bool:
    """Write the layout; False when `out` is already complete."""
    if not force and completion_record(out) is not None:
        return False
    data = {split: read_split(fashion, split) for split in FILES}
    samples = layout({split: labels for split, (_, labels) in data.items()})
    write_grey_images(out, {f"{split}/{task}/{KINDS[kind]}/{row:05d}": data[split][0][row]
                            for split, task, kind, row in samples}, {"fashion": fashion.name})
    return True


def get_args_parser():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fashion", type=Path, required=True,
                        help="the folder of Fashion-MNIST's four .gz files (Debian: /usr/share/datasets/fashion-mnist)")
    add_output_args(parser, "fashion")
    return parser


def main(args):
    out = output_folder(args, "fashion")
    prepared = prepare(args.fashion, out, args.force)
    say_prepared(prepared, out, "fashion" + (samples_line(out) if prepared else ""))
    return 0


if __name__ == "__main__":
    run_main(main, get_args_parser)
