"""Turn Oxford-102 flowers and Reed et al.'s captions into the oxford config's 6 image and 6 caption groups.

    python -m tools.prepare_oxford --archive 102flowers.tgz --labels imagelabels.mat \\
        --captions cvpr2016_flowers.tar.gz [--out data/oxford]

--archive and --captions also take the extracted folder; nothing is downloaded. The groups are
MM-Pick-a-back's (oxford.ipynb): four classes each, named class_<nnnnn> by their imagelabels.mat label
(as Reed et al.'s caption folders), every class split 80/20 with a fixed seed (the test share rounded
up, as sklearn's train_test_split(test_size=0.2) there; the draw itself differs). Writes

    <out>/images/{train,test}/group<k>/class_<nnnnn>/image_<nnnnn>.jpg    (k = 1..6, the JPEG bytes)
    <out>/text/{train,test}/group<k+6>/class_<nnnnn>/image_<nnnnn>.txt    (the image's first caption)

A marker file is written last; a complete folder is skipped unless --force.
"""
import re
from pathlib import Path

import numpy as np
import scipy.io

from tools.archive import Source
from tools.group_layout import (SPLIT_SEED, TEST_PERCENT, Sample, add_output_args, assign_splits, attach_captions,
                                output_folder, say_prepared, write_layout)
from utils.cli import ArgumentParser
from utils.errors import UserError, run_main
from utils.provenance import fingerprint
from utils.records import completion_record

# oxford.ipynb's groups, by imagelabels.mat label (1..102); text group k + 6 holds group k's captions
GROUPS = ((51, 72, 82, 60), (77, 65, 58, 56), (46, 74, 37, 80),
          (73, 41, 83, 95), (89, 81, 75, 76), (94, 88, 78, 43))
NUM_LABELS = 102
IMAGE_NAME = re.compile(r"image_(\d{5})\.jpg")
ARCHIVE_HINT = "download 102flowers.tgz from https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"
LABELS_HINT = "download imagelabels.mat from https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"
CAPTIONS_HINT = "use Reed et al.'s cvpr2016_flowers.tar.gz (https://github.com/reedscot/cvpr2016)"


def class_folder(label: int) -> str:
    return f"class_{label:05d}"


def read_labels(path: Path) -> list[int]:
    """The 1-based class of image_00001.jpg, image_00002.jpg, ... from imagelabels.mat."""
    if not path.is_file():
        raise UserError(f"--labels {path} does not exist; {LABELS_HINT}.")
    try:
        mat = scipy.io.loadmat(path)
    except Exception as err:  # scipy raises many kinds for a file that is not MATLAB v4-v7
        raise UserError(f"--labels {path} is not a MATLAB .mat file ({type(err).__name__}); {LABELS_HINT}.") from None
    labels = np.asarray(mat.get("labels", []))
    if labels.size == 0 or labels.dtype.kind not in "iuf":
        raise UserError(f"--labels {path} has no numeric 'labels' array; {LABELS_HINT}.")
    labels = labels.ravel()
    if not (np.all(labels == np.round(labels)) and labels.min() >= 1 and labels.max() <= NUM_LABELS):
        raise UserError(f"--labels {path} has labels outside the whole numbers 1-{NUM_LABELS}; {LABELS_HINT}.")
    return labels.astype(int).tolist()


def image_paths(source: Source, num_labels: int, labels_path: Path) -> list[str]:
    """Paths of jpg/image_00001.jpg ... in the archive, one per label, checked against the label count."""
    prefix = source.prefix_of("jpg/")
    if prefix is None:
        raise UserError(f"--archive {source.path} has no jpg/ folder; {ARCHIVE_HINT}.")
    folder = prefix + "jpg/"
    numbers = sorted(int(match.group(1)) for name in source.files if name.startswith(folder)
                     and (match := IMAGE_NAME.fullmatch(name[len(folder):])))
    if len(numbers) != num_labels:
        raise UserError(f"--labels {labels_path} has {num_labels} labels but --archive {source.path} holds "
                        f"{len(numbers)} images {folder}image_<nnnnn>.jpg; are they from the same download?")
    missing = sorted(set(range(1, num_labels + 1)) - set(numbers))
    if missing:
        raise UserError(f"--archive {source.path} has no {folder}image_{missing[0]:05d}.jpg, which --labels "
                        f"{labels_path} labels; are they from the same download?")
    return [f"{folder}image_{number:05d}.jpg" for number in numbers]


def group_samples(paths: list[str], labels: list[int]) -> list[Sample]:
    """The samples of the groups' classes, each class with at least a train and a test image."""
    samples = []
    for k, group in enumerate(GROUPS, start=1):
        for label in group:
            mine = [path for path, own in zip(paths, labels) if own == label]
            if len(mine) < 2:
                raise UserError(f"imagelabels.mat gives class {label} {len(mine)} images, but it needs 2 or more "
                                f"for group{k}'s train and test split; {LABELS_HINT}.")
            samples += [Sample(group=k, label=class_folder(label), stem=Path(path).stem, image=path)
                        for path in mine]
    return samples


def prepare(archive: Path, labels_path: Path, captions: Path, out: Path, force: bool = False) -> bool:
    """Write the layout; False when `out` is already complete."""
    if not force and completion_record(out) is not None:
        return False
    labels = read_labels(labels_path)
    with Source(archive, "--archive", ARCHIVE_HINT) as images, \
            Source(captions, "--captions", CAPTIONS_HINT) as texts:
        samples = group_samples(image_paths(images, len(labels), labels_path), labels)
        assign_splits(samples)
        attach_captions(samples, texts, CAPTIONS_HINT)
        marker = {"sources": {"archive": images.identity(),
                              "labels": {"file": labels_path.name, "sha256_16": fingerprint(labels_path)},
                              "captions": texts.identity()},
                  "split": {"test_percent": TEST_PERCENT, "seed": SPLIT_SEED},
                  "caption": "the first line of text_c10/<class>/<stem>.txt",
                  "groups": {f"group{k}": [class_folder(label) for label in group]
                             for k, group in enumerate(GROUPS, start=1)}}
        write_layout(out, samples, len(GROUPS), images, marker)
    return True


def get_args_parser():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, required=True, help="102flowers.tgz or its extracted folder")
    parser.add_argument("--labels", type=Path, required=True, help="imagelabels.mat")
    parser.add_argument("--captions", type=Path, required=True,
                        help="Reed et al.'s cvpr2016_flowers.tar.gz or its extracted folder (text_c10/)")
    add_output_args(parser, "oxford")
    return parser


def main(args):
    out = output_folder(args, "oxford")
    say_prepared(prepare(args.archive, args.labels, args.captions, out, args.force), out,
                 f"oxford ({len(GROUPS)} image groups and their {len(GROUPS)} caption groups)")
    return 0


if __name__ == "__main__":
    run_main(main, get_args_parser)
