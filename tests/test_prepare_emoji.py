"""tools/prepare_emoji.py on tiny fake npm packages (folders and .tgz) written by the test itself."""
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tools import group_layout
from tools.prepare_emoji import CLASS_SETS, MARKER, assign_splits, prepare, slug, task_names
from utils.data import load_paired_split, sample_keys
from utils.dataset_config import get_config
from utils.errors import UserError
from utils.text import encode_text

REPO = Path(__file__).resolve().parent.parent
PER_CATEGORY = 10                          # 8 train + 2 test per class
CATEGORIES = [c for categories in CLASS_SETS.values() for c in categories]
TONE = "1F3FB"


def _code(c, i):
    return f"E{c}{i:02X}"


def _kept():
    """(unified code in emoji-datasource, emojibase hexcode, category) of the emoji that must be kept.
    Every third code carries FE0F in emoji-datasource only, every fifth in emojibase only."""
    kept = []
    for c, category in enumerate(CATEGORIES):
        for i in range(PER_CATEGORY):
            code = _code(c, i)
            unified = f"{code}-FE0F" if i % 3 == 0 else code
            hexcode = f"{code}-FE0F" if i % 5 == 1 else code
            kept.append((unified, hexcode, category))
    return kept


# emoji that must be dropped: (unified, category, in twitter, in google (has_img), in en, in de)
PEOPLE = CATEGORIES.index("People & Body")
DROPPED = [
    (f"{_code(PEOPLE, 1)}-{TONE}", "People & Body", True, True, True, True),   # a skin-tone variant
    (TONE, "Component", True, True, True, True),
    ("E0FF", "Animals & Nature", True, False, True, True),      # no Google image
    ("E1FF", "Food & Drink", True, True, True, False),          # no German caption
    ("E2FF", "Travel & Places", True, None, True, True),        # not in the Google package at all
    ("E3FF", "Regional Indicators", True, True, True, True),    # a category of no class set
]


def _label(code, lang):
    return f"glyph {code.lower()}" if lang == "en" else f"zeichen: {code.lower()}"


def _tags(code, lang):
    # a repeat and a copy of the label, which the caption drops
    return ["alpha", _label(code, lang), "beta", "alpha"] if lang == "en" else ["eins", "zwei"]


def expected_caption(unified, lang):
    code = unified.split("-")[0]
    return f"glyph {code.lower()}; alpha, beta" if lang == "en" else f"zeichen: {code.lower()}; eins, zwei"


def _png(seed, size=8):
    """An RGBA image: left half transparent, right half opaque, one pixel half transparent."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size, size, 4), dtype=np.uint8)
    pixels[:, : size // 2, 3] = 0
    pixels[:, size // 2:, 3] = 255
    pixels[0, -1, 3] = 128
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def _write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode("utf-8"))


def _datasource(folder, style):
    entries = []
    rows = [(u, cat, True, True) for u, _, cat in _kept()] + [(u, cat, t, g) for u, cat, t, g, _, _ in DROPPED]
    for n, (unified, category, in_twitter, in_google) in enumerate(rows):
        present = in_twitter if style == "twitter" else in_google
        if present is None:
            continue
        image = unified.lower() + ".png"
        entry = {"unified": unified, "image": image, "category": category, "subcategory": "x",
                 "name": unified, "short_names": [unified.lower()], "has_img_twitter": in_twitter is True,
                 "has_img_google": in_google is True}
        if unified == _code(PEOPLE, 1):             # a base emoji with variants: only the base is kept
            entry["skin_variations"] = {TONE: {"unified": f"{unified}-{TONE}", "image": f"{unified.lower()}-"
                                               f"{TONE.lower()}.png", f"has_img_{style}": True}}
            _write(folder / "package" / "img" / style / "64" / f"{unified.lower()}-{TONE.lower()}.png", _png(999))
        entries.append(entry)
        if present:
            _write(folder / "package" / "img" / style / "64" / image, _png(n + (1000 if style == "google" else 0)))
    _write(folder / "package" / "emoji.json", entries)
    _write(folder / "package" / "package.json", {"name": f"emoji-datasource-{style}", "version": "16.0.0"})


def _emojibase(folder):
    for lang in ("en", "de"):
        rows = [(h, True) for _, h, _ in _kept()] + [(u, en if lang == "en" else de)
                                                     for u, _, _, _, en, de in DROPPED]
        entries = [{"hexcode": h, "label": _label(h.split("-")[0], lang), "tags": _tags(h.split("-")[0], lang)}
                   for h, present in rows if present]
        entries.append({"hexcode": "1F1E6", "label": "regional indicator A"})    # no tags, not in emoji.json
        _write(folder / "package" / lang / "data.json", entries)
    _write(folder / "package" / "package.json", {"name": "emojibase-data", "version": "17.0.0"})


def fake_packages(root: Path, tgz=False) -> dict[str, Path]:
    """{flag: folder (or .tgz)} of the three fake packages under `root`."""
    folders = {kind: root / kind for kind in ("twitter", "google", "emojibase")}
    _datasource(folders["twitter"], "twitter")
    _datasource(folders["google"], "google")
    _emojibase(folders["emojibase"])
    return {kind: pack(folder, root / f"{kind}.tgz") for kind, folder in folders.items()} if tgz else folders


def pack(folder, archive):
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder / "package", arcname="package")
    return archive


def run_prepare(packages, out, **kw):
    return prepare(packages["twitter"], packages["google"], packages["emojibase"], out, **kw)


def tree(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def stems(out, split, task, modality):
    folder = out / modality / split / task
    return {c.name: sorted(f.stem for f in c.iterdir()) for c in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A data root with emoji/ prepared from the fake .tgz packages; treat as read-only."""
    root = tmp_path_factory.mktemp("emoji_root")
    packages = fake_packages(root / "npm", tgz=True)
    assert run_prepare(packages, root / "emoji") is True
    return root


def test_layout_has_the_configs_tasks_and_classes(prepared):
    out, cfg = prepared / "emoji", get_config("emoji", data_root_dir=prepared)
    assert [t.name for t in cfg.tasks] == task_names() == [
        "a_twitter", "a_google", "b_twitter", "b_google", "a_en", "a_de", "b_en", "b_de"]
    for split in ("train", "test"):
        assert sorted(p.name for p in (out / "images" / split).iterdir()) == sorted(task_names()[:4])
        assert sorted(p.name for p in (out / "text" / split).iterdir()) == sorted(task_names()[4:])
        for task in cfg.tasks:
            classes = sorted(p.name for p in (cfg.root_of(task) / split / task.name).iterdir())
            assert classes == sorted(slug(c) for c in CLASS_SETS[task.name[0]])
            assert len(classes) == task.num_classes
    image = Image.open(next((out / "images" / "train" / "a_twitter").rglob("*.png")))
    assert image.mode == "RGB" and image.size == (32, 32)
    marker = json.loads((out / MARKER).read_text())
    assert marker["samples"]["train/a_twitter"] == 5 * 8 and marker["samples"]["test/b_de"] == 4 * 2
    assert len(marker["train_image_mean"]) == 3 and len(marker["train_image_std"]) == 3


def test_stems_and_splits_match_across_the_four_renderings(prepared):
    out = prepared / "emoji"
    kept = {u for u, _, _ in _kept()}
    for s, categories in CLASS_SETS.items():
        split_stems = {}
        for split in ("train", "test"):
            per_task = [stems(out, split, f"{s}_{r}", "images" if r in ("twitter", "google") else "text")
                        for r in ("twitter", "google", "en", "de")]
            assert all(p == per_task[0] for p in per_task[1:])      # same classes, same stems, same split
            split_stems[split] = per_task[0]
        for category in categories:
            train, test = split_stems["train"][slug(category)], split_stems["test"][slug(category)]
            assert (len(train), len(test)) == (8, 2) and not set(train) & set(test)
            c = CATEGORIES.index(category)
            assert set(train) | set(test) == {u for u in kept if u.startswith(f"E{c}")}


def test_emoji_keeps_its_own_seed_and_rounding_of_the_shared_split():
    """Seven emoji a class: the other preparers' rule (20% rounded up) tests 2, emoji's (rounded to nearest,
    seed 0, as before the preparers shared one split) tests 1, the one its stream draws first."""
    chosen = [{"unified": f"U{c}{i}", "set": s, "class": slug(category)}
              for s, categories in CLASS_SETS.items() for c, category in enumerate(categories) for i in range(7)]
    assign_splits(chosen)
    for s, categories in CLASS_SETS.items():
        for category in categories:
            members = [e for e in chosen if (e["set"], e["class"]) == (s, slug(category))]
            first = np.random.default_rng([0, zlib.crc32(slug(category).encode())]).permutation(7)[0]
            assert [i for i, e in enumerate(members) if e["split"] == "test"] == [first]
            assert len(group_layout.test_members(slug(category), 7)) == 2


def test_variants_and_emoji_missing_a_rendering_are_dropped(prepared):
    out = prepared / "emoji"
    written = {p.stem for p in out.rglob("*") if p.is_file() and p.suffix in (".png", ".txt")}
    assert written == {u for u, _, _ in _kept()}
    assert not any(TONE in stem for stem in written)
    assert not any(row[0] in written for row in DROPPED)


def test_images_are_composited_on_white(tmp_path):
    packages = fake_packages(tmp_path / "npm")
    run_prepare(packages, tmp_path / "emoji", image_size=8)          # no resize: pixels comparable
    unified = _kept()[0][0]
    source = np.asarray(Image.open(packages["twitter"] / "package" / "img" / "twitter" / "64"
                                   / f"{unified.lower()}.png")).astype(int)
    written = next((tmp_path / "emoji" / "images").rglob(f"*/a_twitter/*/{unified}.png"))
    pixels = np.asarray(Image.open(written)).astype(int)
    assert (pixels[:, :4] == 255).all()                               # transparent -> white
    assert (pixels[1:, 4:] == source[1:, 4:, :3]).all()               # opaque -> unchanged
    half = source[0, -1, :3] * 128 / 255 + 255 * 127 / 255
    assert np.abs(pixels[0, -1] - half).max() <= 1


def test_captions_are_label_and_tags_without_the_category(prepared):
    out = prepared / "emoji"
    category_words = {w for c in CATEGORIES for w in re.findall(r"\w+", c.lower())} - {"and"}
    for unified, _, category in _kept():
        for lang in ("en", "de"):
            path = next((out / "text").rglob(f"*/?_{lang}/{slug(category)}/{unified}.txt"))
            text = path.read_text(encoding="utf-8")
            assert text == expected_caption(unified, lang) + "\n"
            lowered = text.lower()
            assert not any(c.lower() in lowered or slug(c) in lowered for c in CATEGORIES)
            assert not category_words & set(re.findall(r"\w+", lowered))


def test_output_is_deterministic_for_folders_and_tarballs(tmp_path, prepared):
    folders = fake_packages(tmp_path / "npm")
    assert run_prepare(folders, tmp_path / "from_folders") is True
    first = tree(tmp_path / "from_folders")
    assert run_prepare(folders, tmp_path / "from_folders", force=True) is True
    assert tree(tmp_path / "from_folders") == first
    assert tree(prepared / "emoji") == first                          # the .tgz packages give the same bytes


def test_complete_folder_is_skipped_and_a_half_written_one_redone(tmp_path):
    packages = fake_packages(tmp_path / "npm")
    out = tmp_path / "emoji"
    assert run_prepare(packages, out) is True
    assert run_prepare(packages, out) is False                        # complete
    assert run_prepare(packages, out, image_size=16) is True          # complete, but for another size
    stray = out / "images" / "train" / "a_twitter" / "objects" / "stray.png"
    stray.write_bytes(b"")
    (out / MARKER).unlink()                                           # interrupted before the marker
    assert run_prepare(packages, out, image_size=16) is True
    assert not stray.exists() and (out / MARKER).is_file()


def test_prepared_data_loads_with_pairs_lined_up(prepared):
    cfg = get_config("emoji", data_root_dir=prepared)
    for name in ("a_twitter", "a_google", "b_twitter", "b_google", "b_en"):
        task = cfg.task(name)
        own, partner = load_paired_split(cfg, task, "train")
        assert len(own) == len(partner) == 8 * task.num_classes and own.classes == partner.classes
        assert torch.equal(own.labels, partner.labels)
        captions = partner if task.modality == "image" else own
        lang = "en" if "twitter" in name or name.endswith("_en") else "de"
        for (cls, stem), tokens in zip(sample_keys(cfg, task, "train"), captions.inputs):
            expected = encode_text(expected_caption(stem, lang), cfg)
            assert tokens[:len(expected)].tolist() == expected and not tokens[len(expected):].any()


def _remove(kind, path):
    def make(packages):
        (packages[kind] / "package" / path).unlink()
        return packages
    return make


def _overwrite(kind, path, content: bytes):
    def make(packages):
        (packages[kind] / "package" / path).write_bytes(content)
        return packages
    return make


def _edit_json(kind, path, edit):
    def make(packages):
        file = packages[kind] / "package" / path
        file.write_text(json.dumps(edit(json.loads(file.read_text()))))
        return packages
    return make


def _replace(kind, other):
    """--<kind> given another package's folder, or a file or folder named `other` that is no package."""
    def make(packages):
        if other in packages:
            return {**packages, kind: packages[other]}
        path = packages[kind].parent / other
        if other.endswith(".tgz"):
            path.write_bytes(b"junk")
        return {**packages, kind: path}
    return make


TWITTER_PNG = f"img/twitter/64/{_code(0, 1).lower()}.png"
GOOGLE_PNG = f"img/google/64/{_code(8, 2).lower()}.png"


@pytest.mark.parametrize("make, message", [
    (_replace("twitter", "nowhere"), r"--twitter .*nowhere does not exist"),
    (_replace("twitter", "bad.tgz"), r"--twitter .*bad.tgz is not a readable npm .tgz \(not a gzip file\)"),
    (_replace("twitter", "google"), r"is the package 'emoji-datasource-google', not emoji-datasource-twitter"),
    (_replace("emojibase", "twitter"), r"--emojibase .* is the package 'emoji-datasource-twitter'"),
    (_remove("twitter", "emoji.json"), r"has no package/emoji.json"),
    (_remove("twitter", TWITTER_PNG), rf"package/{TWITTER_PNG} is missing"),
    (_remove("emojibase", "de/data.json"), r"has no package/de/data.json"),
    (_overwrite("google", "emoji.json", b"[{"), r"google: package/emoji.json is not valid UTF-8 JSON"),
    (_overwrite("google", GOOGLE_PNG, b"not a png"), rf"package/{GOOGLE_PNG} is not a readable PNG"),
    (_edit_json("google", "emoji.json", lambda e: e[:3] + [{"unified": "E000"}]),
     r"package/emoji.json has an entry without unified, image and category"),
    (_edit_json("emojibase", "en/data.json", lambda e: [{"hexcode": "E000", "label": 3}]),
     r"en/data.json has an entry without a hexcode, a label and string tags"),
    (_edit_json("twitter", "emoji.json", lambda e: [x for x in e if x["category"] != "Flags"]),
     r"Category 'Flags' has 0 emoji"),
])
def test_malformed_input_is_one_sentence_naming_the_file(tmp_path, make, message):
    packages = make(fake_packages(tmp_path / "npm"))
    with pytest.raises(UserError, match=message) as err:
        run_prepare(packages, tmp_path / "out")
    text = str(err.value)
    assert "\n" not in text and text[-1] in ".?"
    assert not (tmp_path / "out").exists()


def _cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "tools.prepare_emoji", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=dict(os.environ, TQDM_DISABLE="1"))


def test_cli_prepares_and_reports_errors_without_traceback(tmp_path):
    packages = fake_packages(tmp_path / "npm", tgz=True)
    flags = ["--twitter", packages["twitter"], "--google", packages["google"], "--emojibase", packages["emojibase"]]
    done = _cli(*flags, "--out", tmp_path / "emoji")
    assert done.returncode == 0 and "train/a_twitter 40" in done.stdout, done.stderr
    again = _cli(*flags, "--out", tmp_path / "emoji")
    assert again.returncode == 0 and "already complete" in again.stdout
    (tmp_path / "npm" / "twitter" / "package" / "emoji.json").unlink()
    failures = [
        _cli(*flags[:1], tmp_path / "npm" / "twitter", *flags[2:], "--out", tmp_path / "x"),
        _cli(*flags[:3], packages["emojibase"], *flags[4:], "--out", tmp_path / "x"),
        _cli(*flags[:-2], "--out", tmp_path / "x"),                              # --emojibase missing
        _cli(*flags, "--out", tmp_path / "x", "--image_size", "0"),
    ]
    for result, message in zip(failures, ["has no package/emoji.json", "is the package 'emojibase-data'",
                                          "--emojibase", "--image_size"]):
        assert result.returncode == 1 and result.stderr.startswith("error: ") and message in result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()
