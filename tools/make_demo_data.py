"""Generate the demo config's data: 12 small tasks of 5 classes, deterministic from a seed.

Tasks 1-6 are 32x32 RGB PNG images, tasks 7-12 one-caption .txt files (the task list, families and
related pairs are defined once, in utils/dataset_config.py). Two tasks of one family share their
classes and differ in domain (image: clean vs noisy rendering; text: caption vs note wording),
so each task has a right answer for backbone selection. Written to <out>/{images,text}/{train,test}/
<task>/<class>/; a marker file is written last, so a half-written folder is regenerated.

    python -m tools.make_demo_data [--seed 0] [--out data/demo] [--force]
"""
import colorsys
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from utils.cli import ArgumentParser, positive_int, seed_int
from utils.dataset_config import (DEMO_CLASSES, DEMO_IMAGE_SIZE, DEMO_PAIRED, DEMO_TASK_INDEX, DEMO_TASKS,
                                  data_root)
from utils.errors import UserError, run_main
from utils.records import COMPLETE_MARKER as MARKER, completion_record, mark_complete

# 2: paired captions, 200 + 40 samples per class; 3: one polarity in both image domains, one set of words
# per class and one sentence shape per template in both text styles
FORMAT_VERSION = 3
SPLIT_STREAM = {"train": 0, "test": 1}
# 1000 train samples per task, of which the config holds 20% out for validation: 200 validation and
# 200 test samples per task, so a 1 pp difference is two samples, not a fraction of one
TRAIN_PER_CLASS, TEST_PER_CLASS = 200, 40
SIZE = DEMO_IMAGE_SIZE
SHAPE_JITTER = 3.0   # pixels a shape's centre moves from the image centre
SIZE_LEVELS = ("small", "medium", "large")
HUES = {"red": 0.0, "yellow": 55.0, "green": 120.0, "blue": 225.0, "purple": 280.0}

# --------------------------------------------------------------------------- images

_YY, _XX = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)


def shape_mask(name, cy, cx, r):
    dy, dx = _YY - cy, _XX - cx
    dist = np.sqrt(dy ** 2 + dx ** 2)
    if name == "circle":
        return dist <= r
    if name == "ring":
        return (dist <= r) & (dist >= 0.55 * r)
    if name == "square":
        return np.maximum(np.abs(dy), np.abs(dx)) <= 0.8 * r
    if name == "cross":
        arm = r / 3
        return ((np.abs(dx) <= arm) & (np.abs(dy) <= r)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= r))
    if name == "triangle":  # apex up: symmetric under the horizontal flip used in training
        return (dy >= -r) & (dy <= 0.7 * r) & (np.abs(dx) <= (dy + r) * 0.6)
    raise ValueError(name)


def pattern_mask(name, period, rng):
    """Values in [0, 1]; every pattern keeps its class under a horizontal flip."""
    py, px = rng.uniform(0, period, 2)
    half = period / 2
    if name == "horizontal_stripes":
        return ((_YY + py) // half % 2).astype(np.float32)
    if name == "vertical_stripes":
        return ((_XX + px) // half % 2).astype(np.float32)
    if name == "checkerboard":
        return (((_YY + py) // half + (_XX + px) // half) % 2).astype(np.float32)
    if name == "dots":
        dy, dx = (_YY + py) % period - half, (_XX + px) % period - half
        return (dy ** 2 + dx ** 2 <= (period / 3.2) ** 2).astype(np.float32)
    if name == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        ramp = np.cos(angle) * _XX + np.sin(angle) * _YY
        return (ramp - ramp.min()) / (ramp.max() - ramp.min())
    raise ValueError(name)


def hue_colour(name, rng):
    hue = (HUES[name] + rng.uniform(-18, 18)) % 360 / 360
    rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.55, 1.0), rng.uniform(0.6, 1.0))
    return np.array(rgb, dtype=np.float32) * 255


def background_and_foreground(domain, rng):
    """A bright object on a dark background in both domains; the noisy one (with more pixel noise) has less
    contrast. Same polarity, so a model of one domain reads the other's images: the relation the demo is
    designed to have. (Format 2 inverted the noisy domain, and a clean model then put 99% of the noisy shapes
    in the wrong class.)"""
    if domain == "clean":
        return rng.uniform(0, 70, 3), rng.uniform(150, 255, 3)
    background = rng.uniform(20, 110, 3)
    return background, np.clip(background + rng.uniform(70, 120, 3), 0, 255)


def render_image(family, domain, label, rng):
    """(H x W x 3 uint8 image of class `label`, what a caption can say about it: {"size", "place"})."""
    noisy = domain == "noisy"
    background, foreground = background_and_foreground(domain, rng)
    if family == "shapes":
        # near the centre: the demo Perceiver (one 32-latent cross-attention) learns a shape's outline
        # at a few positions, not anywhere in the image
        low, high = (9, 13) if noisy else (10, 14)
        r = rng.uniform(low, high)
        cy, cx = (SIZE - 1) / 2 + rng.uniform(-SHAPE_JITTER, SHAPE_JITTER, 2)
        mask = shape_mask(label, cy, cx, r).astype(np.float32)
        looks = dict(size=size_level(r, low, high), place=place_of(cy, cx))
    elif family == "patterns":
        low, high = (6, 10) if noisy else (6, 11)
        period = rng.uniform(low, high)
        mask = pattern_mask(label, period, rng)
        looks = dict(size=size_level(period, low, high), place="all over")
    else:  # colours: the object's hue is the class, its shape and the background are not
        low, high = (5, 9) if noisy else (7, 12)
        r = rng.uniform(low, high)
        cy, cx = rng.uniform(r, SIZE - 1 - r, 2)
        mask = shape_mask(rng.choice(["circle", "square"]), cy, cx, r).astype(np.float32)
        grey = rng.uniform(40, 200)
        background = rng.uniform(grey - 25, grey + 25, 3) if noisy else np.full(3, grey)
        foreground = hue_colour(label, rng)
        looks = dict(size=size_level(r, low, high), place=place_of(cy, cx))
    image = background * (1 - mask[..., None]) + foreground * mask[..., None]
    image += rng.normal(0, 22 if noisy else 8, image.shape)
    return np.clip(image, 0, 255).round().astype(np.uint8), looks


def size_level(value, low, high):
    """"small" | "medium" | "large": the third of the range [low, high] it was drawn from that `value` lies in."""
    return SIZE_LEVELS[min(2, int(3 * (value - low) / (high - low)))]


def place_of(cy, cx):
    """The image region an object is centred in, in words a caption uses."""
    third = SIZE / 3
    row = ("top", "middle", "bottom")[min(2, int(cy // third))]
    column = ("left", "centre", "right")[min(2, int(cx // third))]
    return "centre" if (row, column) == ("middle", "centre") else f"{row} {column}"


# --------------------------------------------------------------------------- captions
# Per class: the words a text names it by, in both styles: related text tasks share their classes' words.
SYNONYMS = {
    "circle": ["circle", "disc", "round shape", "round disk", "full moon outline"],
    "cross": ["cross", "plus sign", "crossing bars", "plus mark", "intersecting strokes"],
    "ring": ["ring", "hoop", "hollow loop", "donut", "annulus"],
    "square": ["square", "box", "block", "tile", "four sided panel"],
    "triangle": ["triangle", "wedge", "three sided shape", "pyramid outline", "tent"],
    "checkerboard": ["checkerboard", "checked pattern", "chess grid", "checks", "alternating squares"],
    "dots": ["dots", "polka dots", "spotted pattern", "speckles", "grid of spots"],
    "gradient": ["gradient", "smooth fade", "colour ramp", "soft blend", "shading"],
    "horizontal_stripes": ["horizontal stripes", "horizontal bands", "lying lines", "flat bars", "sideways lines"],
    "vertical_stripes": ["vertical stripes", "vertical bands", "standing lines", "upright bars", "pillar lines"],
    "blue": ["blue", "azure", "navy", "sky tinted", "cobalt"],
    "green": ["green", "emerald", "leafy", "grass tinted", "lime"],
    "purple": ["purple", "violet", "lilac", "plum tinted", "mauve"],
    "red": ["red", "crimson", "scarlet", "cherry tinted", "ruby"],
    "yellow": ["yellow", "golden", "lemon", "sunflower tinted", "amber"],
}
# The two styles word the same sentence shapes differently (a photo / a sketch, in the / at the, their own
# size and mood words), so a class's words stand at the same places in both: a model of one style reads
# the other's. (Format 2's styles had templates of their own and two thirds of their words apart, and no
# text model read its related task's texts above 0.36, chance 0.20.)
STYLES = {
    "captions": dict(
        templates=["a photo of a {size} {kw} {place}.", "this image shows a {kw} {place}, {mood}.",
                   "in the picture there is a {size} {kw}.", "a {mood} little {kw} {place}."],
        distractor=" unlike the {other} next to it.",
        size={"small": "small", "medium": "medium sized", "large": "large"},
        place=lambda where: "all over the picture" if where == "all over" else f"in the {where}",
        mood=["bright", "faded", "sharp", "blurry", "simple"]),
    "notes": dict(
        templates=["a sketch of a {size} {kw} {place}.", "this note shows a {kw} {place}, {mood}.",
                   "in the drawing there is a {size} {kw}.", "a {mood} tiny {kw} {place}."],
        distractor=" unlike the {other} beside it.",
        size={"small": "compact", "medium": "mid sized", "large": "huge"},
        place=lambda where: "all over the sketch" if where == "all over" else f"at the {where}",
        mood=["good", "poor", "neat", "rough", "unclear"]),
}
DISTRACTOR_PROBABILITY = 0.3   # a mention of another class caps bag-of-words accuracy below 100%


def render_caption(family, style, label, looks, rng) -> str:
    """A caption of class `label` describing an image that `looks` (render_image's size and place)."""
    spec = STYLES[style]
    pick = lambda options: options[rng.integers(len(options))]  # noqa: E731
    text = pick(spec["templates"]).format(kw=pick(SYNONYMS[label]), size=spec["size"][looks["size"]],
                                          place=spec["place"](looks["place"]), mood=pick(spec["mood"]))
    if rng.random() < DISTRACTOR_PROBABILITY:
        other = pick([c for c in DEMO_CLASSES[family] if c != label])
        text += spec["distractor"].format(other=pick(SYNONYMS[other]))
    return text


# --------------------------------------------------------------------------- writing

def write_task_split(out, task_index, split, count, seed):
    """Write one split of one task, yielding once per file. A text task's sample n captions sample n of
    its paired image task (same split, class and file stem): the image is rendered again from the same
    seeded stream, for what it looks like."""
    name, modality, family, domain = DEMO_TASKS[task_index - 1]
    folder = out / ("images" if modality == "image" else "text") / split / name
    image_index = task_index if modality == "image" else DEMO_TASK_INDEX[DEMO_PAIRED[name]]
    image_rng = np.random.default_rng([seed, image_index, SPLIT_STREAM[split]])
    text_rng = np.random.default_rng([seed, task_index, SPLIT_STREAM[split]])
    image_domain = DEMO_TASKS[image_index - 1][3]
    for label in DEMO_CLASSES[family]:
        (folder / label).mkdir(parents=True, exist_ok=True)
        for n in range(count):
            image, looks = render_image(family, image_domain, label, image_rng)
            if modality == "image":
                Image.fromarray(image).save(folder / label / f"{n:04d}.png")
            else:
                text = render_caption(family, domain, label, looks, text_rng)
                (folder / label / f"{n:04d}.txt").write_text(text + "\n", encoding="utf-8", newline="\n")
            yield


def format_version(out: Path):
    """The format version of the complete copy in `out`, None when there is none."""
    return (completion_record(out) or {}).get("version")


def generate_demo_data(out, seed=0, train_per_class=TRAIN_PER_CLASS, test_per_class=TEST_PER_CLASS,
                       force=False) -> bool:
    """Write the demo data into `out`; False when a complete copy with these settings is there."""
    out = Path(out)
    settings = dict(version=FORMAT_VERSION, seed=seed, train_per_class=train_per_class,
                    test_per_class=test_per_class)
    if not force and completion_record(out) == settings:
        return False
    # Remove only what this tool writes, never anything else the user keeps in `out`.
    (out / MARKER).unlink(missing_ok=True)
    for sub in ("images", "text"):
        shutil.rmtree(out / sub, ignore_errors=True)
    counts = {"train": train_per_class, "test": test_per_class}
    total = sum(len(DEMO_CLASSES[t[2]]) for t in DEMO_TASKS) * (train_per_class + test_per_class)
    with tqdm(total=total, desc="demo data", unit="file", disable=None) as bar:   # no bar in a log file
        for task_index in range(1, len(DEMO_TASKS) + 1):
            for split, count in counts.items():
                for _ in write_task_split(out, task_index, split, count, seed):
                    bar.update()
    mark_complete(out, settings)
    return True


def get_args_parser():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=seed_int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="default: <data root>/demo")
    parser.add_argument("--force", action="store_true", help="regenerate even when complete")
    parser.add_argument("--if-outdated", action="store_true",
                        help="write only when there is no complete copy of this generator's format version "
                             "(whatever its seed and sizes), and say nothing otherwise: the pipeline scripts' call")
    parser.add_argument("--train-per-class", type=positive_int, default=TRAIN_PER_CLASS)
    parser.add_argument("--test-per-class", type=positive_int, default=TEST_PER_CLASS)
    return parser


def main(args):
    if args.train_per_class < 2 or args.test_per_class < 1:
        raise UserError("--train-per-class must be at least 2 and --test-per-class at least 1.")
    out = args.out if args.out is not None else data_root() / "demo"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder.")
    if args.if_outdated and format_version(out) == FORMAT_VERSION:
        return 0
    if generate_demo_data(out, args.seed, args.train_per_class, args.test_per_class, args.force):
        print(f"demo data written to {out}")
    else:
        print(f"demo data already complete in {out} (use --force to regenerate)")
    return 0


if __name__ == "__main__":
    run_main(main, get_args_parser)
