"""Turn CUB-200-2011 and Reed et al.'s captions into the cub config's 28 image and 28 caption groups.

    python -m tools.prepare_cub --archive CUB_200_2011.tgz --captions cvpr2016_cub.tar.gz [--out data/cub]

Each flag also takes the extracted folder; nothing is downloaded. As MM-Pick-a-back's cub.ipynb: the
classes with exactly 60 images, in class-id order, five to a group, each class split 80/20 (seeded here,
unseeded there); when fewer than 140 qualify, the classes with the most images below 60 complete the last
group (data/readme.md says why). Writes

    <out>/images/{train,test}/group<k>/<nnn.Class>/<file>.jpg       (k = 1..28, CUB's JPEG bytes)
    <out>/text/{train,test}/group<k+28>/<nnn.Class>/<file>.txt       (the image's first caption)

A marker file is written last; a complete folder is skipped unless --force.
"""
import sys
from pathlib import Path

from tools.archive import Source
from tools.group_layout import (SPLIT_SEED, TEST_PERCENT, Sample, add_output_args, assign_splits, attach_captions,
                                output_folder, say_prepared, write_layout)
from utils.cli import ArgumentParser
from utils.errors import UserError, run_main
from utils.records import completion_record

NUM_IMAGE_GROUPS = 28       # + 28 caption groups: the cub config's 56
CLASSES_PER_GROUP = 5
FULL_CLASS_SIZE = 60        # cub.ipynb kept the classes with exactly this many images
METADATA = ("images.txt", "image_class_labels.txt", "classes.txt")
ARCHIVE_HINT = "download CUB_200_2011.tgz from https://www.vision.caltech.edu/datasets/cub_200_2011/"
CAPTIONS_HINT = "use Reed et al.'s cvpr2016_cub.tar.gz (https://github.com/reedscot/cvpr2016)"


def read_table(source: Source, name: str) -> dict[int, str]:
    """{id: value} of a CUB metadata file of '<id> <value>' lines."""
    raw = source.read_file(name)
    table = {}
    for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[0].isdigit():
            raise UserError(f"{source.path}: {name} line {number} is not '<id> <value>': {line[:80]!r}.")
        table[int(fields[0])] = fields[1]
    return table


def read_class_images(source: Source) -> dict[str, list[str]]:
    """{class folder: [image paths inside the source]} in class-id order, from images.txt,
    image_class_labels.txt and classes.txt, each checked against the others."""
    prefix = source.prefix_of(METADATA[0])
    if prefix is None:
        raise UserError(f"--archive {source.path} has no CUB_200_2011/images.txt; {ARCHIVE_HINT}.")
    for name in METADATA:
        if prefix + name not in source.files:
            raise UserError(f"--archive {source.path} has no {prefix}{name}; {ARCHIVE_HINT}.")
    images, labels, classes = (read_table(source, prefix + name) for name in METADATA)
    if set(labels) != set(images):
        raise UserError(f"--archive {source.path}: image_class_labels.txt labels {len(labels)} images but "
                        f"images.txt lists {len(images)} (or other ids); {ARCHIVE_HINT}.")
    by_class = {classes[class_id]: [] for class_id in sorted(classes)}
    for image_id in sorted(images):
        path, class_id = images[image_id], labels[image_id]
        if not class_id.isdigit() or int(class_id) not in classes:
            raise UserError(f"--archive {source.path}: image_class_labels.txt gives image {image_id} the class "
                            f"{class_id}, which classes.txt does not list; {ARCHIVE_HINT}.")
        name = classes[int(class_id)]
        if path.split("/")[0] != name:
            raise UserError(f"--archive {source.path}: images.txt puts image {image_id} in {path}, but its "
                            f"class is {name}; {ARCHIVE_HINT}.")
        by_class[name].append(f"{prefix}images/{path}")
    return by_class


def choose_classes(sizes: dict[str, int]) -> tuple[list[str], list[str]]:
    """(the classes of the groups, in group order; those among them without FULL_CLASS_SIZE images) from
    {class: images} in class-id order: the full classes first, the largest others completing the groups."""
    needed = NUM_IMAGE_GROUPS * CLASSES_PER_GROUP
    full = [name for name, size in sizes.items() if size == FULL_CLASS_SIZE][:needed]
    others = [name for name, size in sizes.items() if name not in full and size >= 2]   # a train and a test image
    largest = sorted(others, key=lambda name: -sizes[name])[:needed - len(full)]   # stable: ties in class-id order
    fillers = [name for name in others if name in largest]
    if len(full) + len(fillers) < needed:
        raise UserError(f"The archive has {len(full)} classes with {FULL_CLASS_SIZE} images and {len(others)} "
                        f"other classes of 2 or more, but {NUM_IMAGE_GROUPS} groups of {CLASSES_PER_GROUP} need "
                        f"{needed}; {ARCHIVE_HINT}.")
    return full + fillers, fillers


def group_samples(source: Source, by_class: dict[str, list[str]], chosen: list[str]) -> list[Sample]:
    """The images of the chosen classes, CLASSES_PER_GROUP consecutive classes to a group."""
    samples = []
    for index, name in enumerate(chosen):
        for path in by_class[name]:
            if path not in source.files:
                raise UserError(f"--archive {source.path} has no {path}, which images.txt lists; {ARCHIVE_HINT}.")
            samples.append(Sample(group=index // CLASSES_PER_GROUP + 1, label=name, stem=Path(path).stem, image=path))
    return samples


def prepare(archive: Path, captions: Path, out: Path, force: bool = False) -> bool:
    """Write the layout; False when `out` is already complete."""
    if not force and completion_record(out) is not None:
        return False
    with Source(archive, "--archive", ARCHIVE_HINT) as images, \
            Source(captions, "--captions", CAPTIONS_HINT) as texts:
        by_class = read_class_images(images)
        chosen, fillers = choose_classes({name: len(paths) for name, paths in by_class.items()})
        samples = group_samples(images, by_class, chosen)
        assign_splits(samples)
        attach_captions(samples, texts, CAPTIONS_HINT)
        groups = {f"group{k + 1}": chosen[k * CLASSES_PER_GROUP:(k + 1) * CLASSES_PER_GROUP]
                  for k in range(NUM_IMAGE_GROUPS)}
        marker = {"sources": {"archive": images.identity(), "captions": texts.identity()},
                  "split": {"test_percent": TEST_PERCENT, "seed": SPLIT_SEED},
                  "caption": "the first line of text_c10/<class>/<stem>.txt",
                  "groups": groups,
                  "fillers": {name: len(by_class[name]) for name in fillers}}
        write_layout(out, samples, NUM_IMAGE_GROUPS, images, marker)
    return True


def get_args_parser():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, required=True, help="CUB_200_2011.tgz or its extracted folder")
    parser.add_argument("--captions", type=Path, required=True,
                        help="Reed et al.'s cvpr2016_cub.tar.gz or its extracted folder (text_c10/)")
    add_output_args(parser, "cub")
    return parser


def main(args):
    out = output_folder(args, "cub")
    if not prepare(args.archive, args.captions, out, args.force):
        say_prepared(False, out, "cub")
        return 0
    fillers = completion_record(out)["fillers"]
    if fillers:
        print(f"note: fewer than {NUM_IMAGE_GROUPS * CLASSES_PER_GROUP} classes have {FULL_CLASS_SIZE} images; "
              "the last group is completed with " + ", ".join(f"{k} ({v} images)" for k, v in fillers.items()),
              file=sys.stderr)
    say_prepared(True, out, f"cub ({NUM_IMAGE_GROUPS} image groups and their {NUM_IMAGE_GROUPS} caption groups)")
    return 0


if __name__ == "__main__":
    run_main(main, get_args_parser)
