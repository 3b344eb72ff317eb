"""Turn WordNet 3.0's database files into the wordnet config's layout: definitions sorted by WordNet's own classes.

    apt-get install wordnet-base        # Debian's WordNet 3.0: /usr/share/wordnet
    python -m tools.prepare_wordnet --dict /usr/share/wordnet [--out data/wordnet]

--dict takes the folder holding data.noun and data.verb, or an archive of it (WordNet-3.0.tar.gz); nothing is
downloaded. A sample is one synset's definition (its gloss without the quoted examples, which often name the
word); its class is the lexicographer file the WordNet editors filed it in (noun.animal, verb.motion, ...).
Six text tasks of five classes each; every class keeps a seeded PER_CLASS of its synsets, split 80/20 as
the other preparers do (tools/group_layout.py). A marker file, written last, records what was read.
"""
import sys
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

from tools.archive import Source
from tools.group_layout import (SPLIT_SEED, add_output_args, output_folder, replace_folders, samples_line,
                                say_prepared, test_members)
from utils.cli import ArgumentParser
from utils.errors import UserError, run_main
from utils.records import completion_record

# task -> its five lexicographer files (lexnames(5WN)); grouped by part of speech and field of meaning
TASKS = {
    "living": ("noun.animal", "noun.plant", "noun.food", "noun.body", "noun.substance"),
    "social": ("noun.person", "noun.group", "noun.location", "noun.artifact", "noun.communication"),
    "abstract": ("noun.act", "noun.attribute", "noun.cognition", "noun.state", "noun.event"),
    "measure": ("noun.quantity", "noun.time", "noun.possession", "noun.object", "noun.phenomenon"),
    "doing": ("verb.motion", "verb.contact", "verb.change", "verb.body", "verb.creation"),
    "relating": ("verb.communication", "verb.social", "verb.possession", "verb.cognition", "verb.stative"),
}
# lexnames(5WN): the two-digit lex_filenum of each lexicographer file used above
LEX_FILES = {
    "noun.act": 4, "noun.animal": 5, "noun.artifact": 6, "noun.attribute": 7, "noun.body": 8,
    "noun.cognition": 9, "noun.communication": 10, "noun.event": 11, "noun.food": 13, "noun.group": 14,
    "noun.location": 15, "noun.object": 17, "noun.person": 18, "noun.phenomenon": 19, "noun.plant": 20,
    "noun.possession": 21, "noun.quantity": 23, "noun.state": 26, "noun.substance": 27, "noun.time": 28,
    "verb.body": 29, "verb.change": 30, "verb.cognition": 31, "verb.communication": 32, "verb.contact": 35,
    "verb.creation": 36, "verb.motion": 38, "verb.possession": 40, "verb.social": 41, "verb.stative": 42,
}
DATA_FILES = ("data.noun", "data.verb")
PER_CLASS = 300             # synsets kept per class: the smallest class used (verb.body) has 547
HINT = "install Debian's wordnet-base (apt-get install wordnet-base) and pass --dict /usr/share/wordnet"


def class_folder(lexname: str) -> str:
    """'noun.animal' -> 'noun_animal'."""
    return lexname.replace(".", "_")


def definition(gloss: str) -> str:
    """The gloss without its examples: they follow the definition as '; "..."' and often name the word."""
    return " ".join(gloss.split('; "')[0].split()).strip('"; ')


def read_synsets(files: dict[str, bytes], source: Source) -> dict[str, list[tuple[str, str]]]:
    """{lexname: [(synset offset, definition)]} of the lexnames in LEX_FILES, in the files' order.
    A data line is 'offset lex_filenum ss_type ... | gloss'; the licence lines start with two spaces."""
    lexname_of = {number: name for name, number in LEX_FILES.items()}
    synsets = {name: [] for name in LEX_FILES}
    for file_name, raw in files.items():
        for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
            if not line.strip() or line.startswith("  "):
                continue
            fields, _, gloss = line.partition(" | ")
            fields = fields.split()
            if len(fields) < 4 or not fields[0].isdigit() or not fields[1].isdigit() or not gloss:
                raise UserError(f"{source.path}: {file_name} line {number} is not a WordNet data line "
                                f"('offset lex_filenum ss_type ... | gloss'); {HINT}.")
            lexname = lexname_of.get(int(fields[1]))
            text = definition(gloss)
            if lexname is not None and text:
                synsets[lexname].append((fields[0], text))
    return synsets


def chosen_samples(synsets: dict[str, list[tuple[str, str]]]) -> list[tuple[str, str, str, str, str]]:
    """(split, task, class folder, offset, definition) of PER_CLASS seeded synsets of every class."""
    samples = []
    for task, lexnames in TASKS.items():
        for lexname in lexnames:
            members = synsets[lexname]
            if len(members) < 2:
                raise UserError(f"{lexname} has {len(members)} synsets with a definition (2 needed); {HINT}.")
            rng = np.random.default_rng([SPLIT_SEED, zlib.crc32(f"keep {lexname}".encode())])
            kept = sorted(members[i] for i in rng.permutation(len(members))[:PER_CLASS])
            test = test_members(lexname, len(kept))
            samples += [("test" if i in test else "train", task, class_folder(lexname), offset, text)
                        for i, (offset, text) in enumerate(kept)]
    return samples


def prepare(dictionary: Path, out: Path, force: bool = False) -> bool:
    """Write the layout; False when `out` is already complete."""
    if not force and completion_record(out) is not None:
        return False
    with Source(dictionary, "--dict", HINT) as source:
        prefix = source.prefix_of(DATA_FILES[0])
        if prefix is None or prefix + DATA_FILES[1] not in source.files:
            raise UserError(f"--dict {dictionary} holds no {' and '.join(DATA_FILES)}; {HINT}.")
        files = {name[len(prefix):]: raw for name, raw in source.read([prefix + f for f in DATA_FILES], "wordnet")}
        identity = source.identity()
    samples = chosen_samples(read_synsets(files, source))
    counts = Counter(f"{split}/{task}" for split, task, *_ in samples)
    header = files[DATA_FILES[0]].decode("utf-8", errors="replace")
    release = "WordNet 3.0" if "WordNet 3.0" in header else "WordNet (release not stated)"
    replace_folders(out, ((f"text/{split}/{task}/{label}/{offset}.txt", (text + "\n").encode("utf-8"))
                          for split, task, label, offset, text in samples),
                    {"sources": {"wordnet": release, **identity}, "per_class": PER_CLASS,
                     "samples": dict(sorted(counts.items()))})
    return True


def get_args_parser():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dict", type=Path, required=True, dest="dictionary",
                        help="folder with data.noun and data.verb (Debian: /usr/share/wordnet), or its .tar.gz")
    add_output_args(parser, "wordnet")
    return parser


def main(args):
    out = output_folder(args, "wordnet")
    prepared = prepare(args.dictionary, out, args.force)
    if prepared and completion_record(out)["sources"]["wordnet"] != "WordNet 3.0":
        print("note: --dict does not say it is WordNet 3.0; the wordnet config was measured on it", file=sys.stderr)
    say_prepared(prepared, out, "wordnet" + (samples_line(out) if prepared else ""))
    return 0


if __name__ == "__main__":
    run_main(main, get_args_parser)
