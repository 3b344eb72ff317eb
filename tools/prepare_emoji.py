"""Turn three npm emoji packages into the emoji config's layout: the same emoji drawn twice and captioned twice.

    npm pack emoji-datasource-twitter@16.0.0 emoji-datasource-google@16.0.0 emojibase-data@17.0.0
    python -m tools.prepare_emoji --twitter emoji-datasource-twitter-16.0.0.tgz \
        --google emoji-datasource-google-16.0.0.tgz --emojibase emojibase-data-17.0.0.tgz [--out data/emoji]

Each flag takes the npm tarball or its extracted folder; nothing is downloaded. Classes are Unicode
categories in two sets (a: 5, b: 4), each rendered four ways: Twitter and Google images (composited on
white) and English and German captions (emojibase label and tags, never the category). Only emoji present
in all four, without skin-tone variants, are kept; the file stem is the emoji's `unified` code everywhere
(what pairs an image with its caption), and a seeded 80/20 split per class puts each emoji in the same
split everywhere. A marker file, written last, records the training images' channel statistics.
"""
import io
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from tools.archive import Source
from tools.group_layout import add_output_args, output_folder, samples_line, say_prepared, test_members
from utils.cli import ArgumentParser, positive_int
from utils.errors import UserError, run_main
from utils.records import COMPLETE_MARKER as MARKER, completion_record, mark_complete

# Unicode emoji categories (emoji-datasource's `category`) of each class set; Component and any
# category not listed are dropped.
CLASS_SETS = {
    "a": ("Animals & Nature", "Food & Drink", "Travel & Places", "Activities", "Objects"),
    "b": ("Smileys & Emotion", "People & Body", "Symbols", "Flags"),
}
STYLES = ("twitter", "google")       # image renderings: emoji-datasource-<style>
LANGUAGES = ("en", "de")             # text renderings: emojibase-data/<language>/data.json
PACKAGES = {"twitter": "emoji-datasource-twitter", "google": "emoji-datasource-google",
            "emojibase": "emojibase-data"}
TESTED_VERSIONS = {"twitter": "16.0.0", "google": "16.0.0", "emojibase": "17.0.0"}
SKIN_TONES = {"1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF"}
VARIATION_SELECTOR = "FE0F"          # emojibase and emoji-datasource disagree on where it appears
IMAGE_FOLDER = "img/{style}/64/"    # 64x64 RGBA PNGs, named by emoji.json's `image`
TEST_FRACTION = 0.2      # rounded to nearest and seed 0: emoji's split predates the other preparers' rule
SPLIT_SEED = 0           # (tools/group_layout.py), and keeps its data, so its measured figures stand


def task_names() -> list[str]:
    """Image tasks first, then text tasks, as in the emoji config."""
    return ([f"{s}_{style}" for s in CLASS_SETS for style in STYLES]
            + [f"{s}_{language}" for s in CLASS_SETS for language in LANGUAGES])


def slug(category: str) -> str:
    """The class folder of a category: 'Animals & Nature' -> 'animals_and_nature'."""
    return re.sub(r"[^a-z0-9]+", "_", category.lower().replace("&", " and ")).strip("_")


def match_key(code: str) -> str:
    """The code points of an emoji without variation selectors, upper case: the join key of the packages."""
    return "-".join(part for part in code.upper().split("-") if part != VARIATION_SELECTOR)


# --------------------------------------------------------------------------- reading the packages

def read_package(path: Path, flag: str, kind: str, wanted) -> dict[str, bytes]:
    """{path inside the package: bytes} of the files `wanted(path)` accepts, plus package.json, from an
    npm .tgz (its `package/` prefix dropped) or an extracted folder (the `package` folder or its parent)."""
    hint = f"fetch it with `npm pack {PACKAGES[kind]}@{TESTED_VERSIONS[kind]}`"
    with Source(path, flag, hint, kind="npm .tgz") as source:
        prefix = source.prefix_of("package.json")
        if prefix is None:
            raise UserError(f"{flag} {path} is not an npm package (no package/package.json); {hint}.")
        names = [name for name in source.files if name.startswith(prefix)
                 and (name == prefix + "package.json" or wanted(name[len(prefix):]))]
        files = {name[len(prefix):]: raw for name, raw in source.read(names, kind)}
    meta = parse_json(files["package.json"], f"{path}: package.json")
    name = meta.get("name") if isinstance(meta, dict) else None
    if name != PACKAGES[kind]:
        raise UserError(f"{flag} {path} is the package {name!r}, not {PACKAGES[kind]}; {hint}.")
    return files


def parse_json(raw: bytes, label: str):
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{label} is not valid UTF-8 JSON ({err}).") from None


def package_file(files: dict, name: str, path: Path, flag: str) -> bytes:
    if name not in files:
        raise UserError(f"{flag} {path} has no package/{name}; is it the right package?")
    return files[name]


def version(files: dict) -> str:
    return str(json.loads(files["package.json"]).get("version", "?"))


def datasource_entries(files: dict, path: Path, flag: str) -> dict[str, dict]:
    """emoji.json as {match key: entry}, each entry checked for the fields this tool reads."""
    label = f"{path}: package/emoji.json"
    entries = parse_json(package_file(files, "emoji.json", path, flag), label)
    if not isinstance(entries, list) or not entries:
        raise UserError(f"{label} is not a list of emoji; is it emoji-datasource?")
    by_key = {}
    for entry in entries:
        fields_ok = isinstance(entry, dict) and all(
            isinstance(entry.get(key), str) for key in ("unified", "image", "category"))
        if not fields_ok:
            raise UserError(f"{label} has an entry without unified, image and category strings: {str(entry)[:80]}.")
        by_key[match_key(entry["unified"])] = entry
    return by_key


def emojibase_entries(files: dict, language: str, path: Path, flag: str) -> dict[str, dict]:
    """<language>/data.json as {match key: entry}, each with a label and a list of tags."""
    label = f"{path}: package/{language}/data.json"
    entries = parse_json(package_file(files, f"{language}/data.json", path, flag), label)
    if not isinstance(entries, list) or not entries:
        raise UserError(f"{label} is not a list of emoji; is it emojibase-data?")
    by_key = {}
    for entry in entries:
        tags = entry.get("tags", []) if isinstance(entry, dict) else None
        fields_ok = isinstance(entry, dict) and isinstance(entry.get("hexcode"), str) \
            and isinstance(entry.get("label"), str) and isinstance(tags, list) \
            and all(isinstance(tag, str) for tag in tags)
        if not fields_ok:
            raise UserError(f"{label} has an entry without a hexcode, a label and string tags: {str(entry)[:80]}.")
        by_key[match_key(entry["hexcode"])] = entry
    return by_key


# --------------------------------------------------------------------------- the four renderings

def caption(entry: dict) -> str:
    """'<label>; <tag>, <tag>, ...': the label (which may itself hold a colon, 'flag: Japan'), then the
    tags in emojibase's order without repeats or a copy of the label."""
    label = " ".join(entry["label"].split())
    tags = []
    for tag in (" ".join(tag.split()) for tag in entry.get("tags", [])):
        if tag and tag.lower() != label.lower() and tag.lower() not in (t.lower() for t in tags):
            tags.append(tag)
    return f"{label}; {', '.join(tags)}" if tags else label


def render(raw: bytes, size: int, label: str) -> Image.Image:
    """An RGB image of size x size: the emoji composited on white (its transparent background)."""
    try:
        with Image.open(io.BytesIO(raw)) as img:
            rgba = img.convert("RGBA")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UserError(f"{label} is not a readable PNG ({type(err).__name__}).") from None
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB")
    return rgb if rgb.size == (size, size) else rgb.resize((size, size), Image.LANCZOS)


def select(entries: dict) -> list[dict]:
    """The emoji of the listed categories drawn by both styles and captioned in both languages, sorted
    by unified code: [{unified, set, class, key}]."""
    class_of = {category: (s, slug(category)) for s, categories in CLASS_SETS.items() for category in categories}
    chosen = []
    for key, entry in entries["twitter"].items():
        if entry["category"] not in class_of or SKIN_TONES & set(key.split("-")):
            continue
        if not all(entries[style].get(key, {}).get(f"has_img_{style}", False) for style in STYLES):
            continue
        if not all(key in entries[language] for language in LANGUAGES):
            continue
        class_set, name = class_of[entry["category"]]
        chosen.append({"unified": entry["unified"], "set": class_set, "class": name, "key": key})
    return sorted(chosen, key=lambda emoji: emoji["unified"])


def assign_splits(chosen: list[dict]) -> None:
    """Seeded 80/20 split per class (at least one test emoji); sets emoji['split']."""
    by_class = {}
    for emoji in chosen:
        by_class.setdefault((emoji["set"], emoji["class"]), []).append(emoji)
    for s, categories in CLASS_SETS.items():
        for category in categories:
            members = by_class.get((s, slug(category)), [])
            if len(members) < 2:
                raise UserError(f"Category {category!r} has {len(members)} emoji drawn by both styles and "
                                "captioned in both languages (2 needed); are these the right packages?")
            num_test = max(1, round(len(members) * TEST_FRACTION))
            test = test_members(slug(category), len(members), num_test, SPLIT_SEED)
            for i, emoji in enumerate(members):
                emoji["split"] = "test" if i in test else "train"


def prepare(twitter: Path, google: Path, emojibase: Path, out: Path, image_size: int = 32,
            force: bool = False) -> bool:
    """Write the layout; False when `out` is already complete for this image size."""
    if not force and (completion_record(out) or {}).get("image_size") == image_size:
        return False
    paths = {"twitter": twitter, "google": google, "emojibase": emojibase}
    flags = {kind: f"--{kind}" for kind in paths}
    files = {}
    for style in STYLES:
        folder = IMAGE_FOLDER.format(style=style)
        files[style] = read_package(paths[style], flags[style], style,
                                    lambda name, folder=folder: name == "emoji.json" or name.startswith(folder))
    files["emojibase"] = read_package(emojibase, flags["emojibase"], "emojibase",
                                      lambda name: name in {f"{lang}/data.json" for lang in LANGUAGES})
    entries = {style: datasource_entries(files[style], paths[style], flags[style]) for style in STYLES}
    entries.update({lang: emojibase_entries(files["emojibase"], lang, emojibase, flags["emojibase"])
                    for lang in LANGUAGES})
    chosen = select(entries)
    assign_splits(chosen)

    # Decode every image before touching `out`: a bad package leaves a complete folder as it was.
    images, captions = {}, {}
    for emoji in tqdm(chosen, desc="emoji render", unit="emoji"):
        for style in STYLES:
            name = IMAGE_FOLDER.format(style=style) + entries[style][emoji["key"]]["image"]
            label = f"{paths[style]}: package/{name}"
            if name not in files[style]:
                raise UserError(f"{label} is missing (emoji.json lists it for {emoji['unified']}); "
                                "is the package complete?")
            images[emoji["unified"], style] = render(files[style][name], image_size, label)
        for lang in LANGUAGES:
            captions[emoji["unified"], lang] = caption(entries[lang][emoji["key"]])

    (out / MARKER).unlink(missing_ok=True)
    for modality in ("images", "text"):
        shutil.rmtree(out / modality, ignore_errors=True)
    counts = {}
    with tqdm(total=len(images) + len(captions), desc="emoji write", unit="file") as bar:
        for emoji in chosen:
            for rendering in STYLES + LANGUAGES:
                task = f"{emoji['set']}_{rendering}"
                modality = "images" if rendering in STYLES else "text"
                folder = out / modality / emoji["split"] / task / emoji["class"]
                folder.mkdir(parents=True, exist_ok=True)
                if rendering in STYLES:
                    images[emoji["unified"], rendering].save(folder / f"{emoji['unified']}.png")
                else:
                    (folder / f"{emoji['unified']}.txt").write_text(captions[emoji["unified"], rendering] + "\n",
                                                                     encoding="utf-8")
                key = f"{emoji['split']}/{task}"
                counts[key] = counts.get(key, 0) + 1
                bar.update()
    train = np.stack([np.asarray(images[emoji["unified"], style], dtype=np.float64) / 255.0
                      for emoji in chosen if emoji["split"] == "train" for style in STYLES])
    marker = {
        "sources": {kind: f"{PACKAGES[kind]}@{version(files[kind])}" for kind in paths},
        "image_size": image_size,
        "samples": dict(sorted(counts.items())),
        # what the emoji config's mean/std are: all train images of the four image tasks pooled
        "train_image_mean": [round(v, 4) for v in train.mean(axis=(0, 1, 2)).tolist()],
        "train_image_std": [round(v, 4) for v in train.std(axis=(0, 1, 2)).tolist()],
    }
    mark_complete(out, marker)
    return True


def get_args_parser():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--twitter", type=Path, required=True, help="emoji-datasource-twitter-16.0.0.tgz or its folder")
    parser.add_argument("--google", type=Path, required=True, help="emoji-datasource-google-16.0.0.tgz or its folder")
    parser.add_argument("--emojibase", type=Path, required=True, help="emojibase-data-17.0.0.tgz or its folder")
    parser.add_argument("--image_size", type=positive_int, default=32, help="side of the saved images")
    add_output_args(parser, "emoji")
    return parser


def main(args):
    out = output_folder(args, "emoji")
    if not prepare(args.twitter, args.google, args.emojibase, out, args.image_size, args.force):
        say_prepared(False, out, "emoji")
        return 0
    marker = completion_record(out)
    for kind, source in marker["sources"].items():
        if source != f"{PACKAGES[kind]}@{TESTED_VERSIONS[kind]}":
            print(f"note: --{kind} is {source}; the emoji config was measured on "
                  f"{PACKAGES[kind]}@{TESTED_VERSIONS[kind]}", file=sys.stderr)
    say_prepared(True, out, "emoji" + samples_line(out))
    return 0


if __name__ == "__main__":
    run_main(main, get_args_parser)
