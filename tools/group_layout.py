"""What the data preparers share: MM-Pick-a-back's seeded 80/20 split of every class and replacing a prepared
folder in one move (every preparer but emoji's); grey images with their grey levels' mean/std (digits, Fashion-MNIST);
for CUB and Oxford also one caption per image from Reed et al.'s text_c10 folders, written in the group layout

    <out>/images/{train,test}/group<k>/<class>/<stem>.jpg
    <out>/text/{train,test}/group<k + N/2>/<class>/<stem>.txt

where text group k + N/2 holds the caption of every image of image group k, in the same split and
under the same <class>/<stem> (what the configs' `paired` and utils.data.load_paired_split read).
"""
import io
import shutil
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from tools.archive import Source
from utils.dataset_config import data_root
from utils.errors import UserError
from utils.records import COMPLETE_MARKER as MARKER, completion_record, mark_complete

TEST_PERCENT = 20       # of every class, rounded up, as sklearn's train_test_split(test_size=0.2)
SPLIT_SEED = 42         # oxford.ipynb's random_state
CAPTION_FOLDER = "text_c10/"    # Reed et al.'s cvpr2016_*: text_c10/<class>/<stem>.txt, ten captions each


@dataclass
class Sample:
    """One image and its caption."""
    group: int          # image group k (1-based); the caption goes to text group k + N/2
    label: str          # class folder
    stem: str           # file name without suffix, shared by the image and its caption
    image: str          # the image's path inside the image source
    split: str = ""
    caption: str = ""


def test_members(label: str, count: int, num_test: int | None = None, seed: int = SPLIT_SEED) -> set[int]:
    """Which of a class's `count` members (by position in a fixed order) go to test: `num_test` of them
    (default TEST_PERCENT, rounded up), drawn from the class's own stream, so its split does not depend on which
    other classes are prepared."""
    if num_test is None:
        num_test = -(-count * TEST_PERCENT // 100)
    rng = np.random.default_rng([seed, zlib.crc32(label.encode())])
    return set(rng.permutation(count)[:num_test].tolist())


def assign_splits(samples: list[Sample]) -> None:
    """Set every sample's split, class by class (`test_members`), the members ordered by stem."""
    by_label = {}
    for sample in sorted(samples, key=lambda s: (s.label, s.stem)):
        by_label.setdefault(sample.label, []).append(sample)
    for label, members in by_label.items():
        test = test_members(label, len(members))
        for i, sample in enumerate(members):
            sample.split = "test" if i in test else "train"


def attach_captions(samples: list[Sample], captions: Source, hint: str) -> None:
    """Set each sample's caption: the first line of text_c10/<class>/<stem>.txt in `captions`."""
    prefix = captions.prefix_of(CAPTION_FOLDER)
    if prefix is None:
        raise UserError(f"{captions.flag} {captions.path} has no {CAPTION_FOLDER} folder; {hint}.")
    folder = prefix + CAPTION_FOLDER
    labels = {name[len(folder):].split("/")[0] for name in captions.files if name.startswith(folder)}
    for sample in samples:
        if sample.label not in labels:
            raise UserError(f"{captions.flag} {captions.path} has no {CAPTION_FOLDER}{sample.label}/ folder "
                            f"(the captions of class {sample.label}); {hint}.")
    wanted = {}
    for sample in samples:
        name = f"{folder}{sample.label}/{sample.stem}.txt"
        if name not in captions.files:
            raise UserError(f"{captions.flag} {captions.path} has no caption {name} for the image "
                            f"{sample.image}; {hint}.")
        wanted[name] = sample
    for name, raw in captions.read(wanted, desc="captions"):
        wanted[name].caption = first_caption(raw, f"{captions.path}: {name}")


def first_caption(raw: bytes, label: str) -> str:
    """The first non-empty line: one caption per image, as MM-Pick-a-back's caption files held."""
    # crowd-sourced text: a stray byte is replaced rather than failing the whole dataset
    for line in raw.decode("utf-8", errors="replace").splitlines():
        if line.strip():
            return " ".join(line.split())
    raise UserError(f"{label} holds no caption; download the caption archive again.")


def write_layout(out: Path, samples: list[Sample], num_image_groups: int, images: Source, marker: dict) -> dict:
    """Write every sample's image bytes (unchanged: the loaders resize) and caption, then the marker
    (`marker` plus the sample counts, which are returned)."""
    def files():
        by_image = {sample.image: sample for sample in samples}
        for name, raw in images.read(by_image, desc=f"{out.name} images"):
            sample = by_image[name]
            check_image(raw, f"{images.path}: {name}")
            yield f"images/{sample.split}/group{sample.group}/{sample.label}/{sample.stem}{Path(name).suffix}", raw
            yield (f"text/{sample.split}/group{sample.group + num_image_groups}/{sample.label}/{sample.stem}.txt",
                   (sample.caption + "\n").encode("utf-8"))

    counts = sample_counts(samples, num_image_groups)
    replace_folders(out, files(), {**marker, "samples": counts})
    return counts


def replace_folders(out: Path, files, marker: dict) -> None:
    """Write `files` ((path under `out`, bytes) pairs, the first part of each path a folder such as `images`)
    into out/.partial, move each of those folders into place, then write the marker: a bad input that
    raises while `files` is read leaves a complete `out` as it was."""
    partial = out / ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        for path, data in files:
            (partial / path).parent.mkdir(parents=True, exist_ok=True)
            (partial / path).write_bytes(data)
        (out / MARKER).unlink(missing_ok=True)
        for folder in sorted(p.name for p in partial.iterdir()) if partial.exists() else ():
            shutil.rmtree(out / folder, ignore_errors=True)
            (partial / folder).rename(out / folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    mark_complete(out, marker)


def sample_counts(samples: list[Sample], num_image_groups: int) -> dict[str, int]:
    """{"<split>/group<k>": samples} of every image group and, equal to it, its caption group."""
    counts = {}
    for split in ("train", "test"):
        for offset in (0, num_image_groups):
            for k in range(1, num_image_groups + 1):
                counts[f"{split}/group{k + offset}"] = sum(s.split == split and s.group == k for s in samples)
    return counts


def check_image(raw: bytes, label: str) -> None:
    try:
        with Image.open(io.BytesIO(raw)) as img:
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UserError(f"{label} is not a readable image ({type(err).__name__}); "
                        "download the archive again.") from None


def write_grey_images(out: Path, images: dict, sources: dict) -> None:
    """Write `images` ({"<split>/<task>/<class>/<stem>": 2-D uint8 grey pixels}) as out/images/<key>.png in one move
    (replace_folders), with a marker of the `sources`, the samples per split and task, and the train images' grey
    level mean and std (0-1): what a grey config's mean/std are."""
    def png(pixels):
        buffer = io.BytesIO()
        Image.fromarray(pixels, mode="L").save(buffer, "PNG")
        return buffer.getvalue()
    counts = Counter(key.rsplit("/", 2)[0] for key in images)
    train = np.stack([pixels for key, pixels in images.items() if key.startswith("train/")]) / 255.0
    replace_folders(out, ((f"images/{key}.png", png(pixels)) for key, pixels in images.items()),
                    {"sources": sources, "samples": dict(sorted(counts.items())),
                     "train_image_mean": round(float(train.mean()), 4),
                     "train_image_std": round(float(train.std()), 4)})


def add_output_args(parser, folder: str) -> None:
    """--out (default <data root>/<folder>) and --force, as every preparer takes them."""
    parser.add_argument("--out", type=Path, default=None, help=f"default: <data root>/{folder}")
    parser.add_argument("--force", action="store_true", help="rewrite even when complete")


def output_folder(args, folder: str) -> Path:
    return args.out if args.out is not None else data_root() / folder


def say_prepared(prepared: bool, out: Path, what: str) -> None:
    """A preparer's last line: what it wrote, or that `out` was complete already."""
    print(f"{what} written to {out}" if prepared else f"{out} is already complete (use --force to rewrite)")


def samples_line(out: Path) -> str:
    """': <split>/<task> <count>, ...' from the marker of a folder just prepared."""
    return ": " + ", ".join(f"{key} {count}" for key, count in completion_record(out)["samples"].items())
