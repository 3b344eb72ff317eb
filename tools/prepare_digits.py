"""Turn scikit-learn's bundled handwritten digits into the digits config's layout: four image tasks of five digits.

    pip download --no-deps scikit-learn==1.9.1 -d .
    python -m tools.prepare_digits --digits scikit_learn-1.9.1-*.whl [--out data/digits]

--digits takes the scikit-learn wheel, an installed `sklearn` folder, or its `datasets/data/digits.csv.gz`;
nothing is downloaded. The 1,797 digits (UCI's optical recognition set: 8x8 counts of ink, 0-16, from 13
writers) are saved as 8x8 grey PNGs. Each digit's images are halved (seeded): one half serves the tasks
"low" (0-4) and "high" (5-9), the other "even" and "odd", so "low" and "even" share three digits but no
image. Each task's classes are split 80/20 as the other preparers do (tools/group_layout.py).
"""
import gzip
import io
import zipfile
import zlib
from pathlib import Path

import numpy as np

from tools.archive import Source
from tools.group_layout import (SPLIT_SEED, add_output_args, output_folder, samples_line, say_prepared, test_members,
                                write_grey_images)
from utils.cli import ArgumentParser
from utils.errors import UserError, run_main
from utils.records import completion_record

MEMBER = "sklearn/datasets/data/digits.csv.gz"
TASKS = {"low": (0, 1, 2, 3, 4), "high": (5, 6, 7, 8, 9), "even": (0, 2, 4, 6, 8), "odd": (1, 3, 5, 7, 9)}
HALF_OF_TASK = {"low": 0, "high": 0, "even": 1, "odd": 1}
MAX_INK = 16
HINT = "get it with `pip download --no-deps scikit-learn==1.9.1` and pass the wheel"


def read_csv_gz(path: Path) -> bytes:
    """The gzipped CSV from the wheel, an installed sklearn folder, or the file itself."""
    try:
        if path.suffix == ".whl":
            with zipfile.ZipFile(path) as wheel:
                if MEMBER not in wheel.namelist():
                    raise UserError(f"--digits {path} holds no {MEMBER}; is it scikit-learn's wheel? {HINT}.")
                return wheel.read(MEMBER)
        if path.is_dir():
            with Source(path, "--digits", HINT) as source:
                prefix = source.prefix_of(MEMBER.removeprefix("sklearn/"))
                if prefix is None:
                    raise UserError(f"--digits {path} holds no {MEMBER}; {HINT}.")
                return source.read_file(prefix + MEMBER.removeprefix("sklearn/"))
        return path.read_bytes()
    except (OSError, zipfile.BadZipFile) as err:
        raise UserError(f"--digits {path} cannot be read ({err}); {HINT}.") from None


def parse_digits(raw: bytes, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images N x 8 x 8 of ink counts 0-16, labels N) from rows of 64 counts and the digit."""
    try:
        rows = np.loadtxt(io.BytesIO(gzip.decompress(raw)), delimiter=",", ndmin=2)
    except (OSError, EOFError, zlib.error, ValueError) as err:
        raise UserError(f"--digits {path}: digits.csv.gz is not a gzipped CSV of numbers ({err}); {HINT}.") from None
    if rows.shape[1] != 65 or rows.min() < 0 or rows[:, :64].max() > MAX_INK or rows[:, 64].max() > 9 \
            or not np.array_equal(rows, rows.round()):
        raise UserError(f"--digits {path}: digits.csv.gz does not hold rows of 64 ink counts (0-{MAX_INK}) "
                        f"and a digit; {HINT}.")
    return rows[:, :64].reshape(-1, 8, 8).astype(np.uint8), rows[:, 64].astype(int)


def grey(counts: np.ndarray) -> np.ndarray:
    """Ink counts as grey levels, dark ink on white paper, 0-16 spread over 255-0."""
    return (255 - counts.astype(np.int32) * 255 // MAX_INK).astype(np.uint8)


def layout(labels: np.ndarray) -> list[tuple[str, str, int, int]]:
    """(split, task, digit, row) of every image a task uses."""
    halves = {}
    for digit in range(10):
        rows = np.flatnonzero(labels == digit)
        if len(rows) < 4:
            raise UserError(f"digits.csv.gz has {len(rows)} images of the digit {digit} (4 needed); {HINT}.")
        order = rows[np.random.default_rng([SPLIT_SEED, zlib.crc32(f"halve {digit}".encode())]).permutation(len(rows))]
        halves[digit] = (sorted(order[: len(rows) // 2]), sorted(order[len(rows) // 2:]))
    samples = []
    for task, digits in TASKS.items():
        for digit in digits:
            members = halves[digit][HALF_OF_TASK[task]]
            test = test_members(f"{task}/{digit}", len(members))
            samples += [("test" if i in test else "train", task, digit, int(row)) for i, row in enumerate(members)]
    return samples


def prepare(digits: Path, out: Path, force: bool = False) -> bool:
    """Write the layout; False when `out` is already complete."""
    if not force and completion_record(out) is not None:
        return False
    images, labels = parse_digits(read_csv_gz(digits), digits)
    samples = layout(labels)
    write_grey_images(out, {f"{split}/{task}/{digit}/{row:04d}": grey(images[row])
                            for split, task, digit, row in samples}, {"digits": digits.name})
    return True


def get_args_parser():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=Path, required=True,
                        help="the scikit-learn wheel, an installed sklearn folder, or its digits.csv.gz")
    add_output_args(parser, "digits")
    return parser


def main(args):
    out = output_folder(args, "digits")
    prepared = prepare(args.digits, out, args.force)
    say_prepared(prepared, out, "digits" + (samples_line(out) if prepared else ""))
    return 0


if __name__ == "__main__":
    run_main(main, get_args_parser)
