"""Task data: read one task's split from the folder layout and iterate it in batches.

Two paths with the same batch semantics (x normalised float32 B x 3 x H x W or int64 B x T, y int64,
both on `device`): a task that fits in memory is decoded once into a uint8 tensor and augmented
with tensor ops (fast, airbench style); a larger image task is read per epoch by a DataLoader over
torchvision's ImageFolder.
"""
import math
import os
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from tqdm import tqdm

from utils.errors import UserError
from utils.provenance import files_fingerprint
from utils.text import encode_batch

# torchvision's image extensions (its ImageFolder reads the same files); torchvision itself is only
# imported by the DataLoader path (FolderTaskLoader): it costs ~1 s at every process start.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
IN_MEMORY_LIMIT_BYTES = 2 * 1024 ** 3   # decoded size above which the DataLoader path is used
CROP_PADDING = 4
SPLITS = ("train", "test")


@dataclass
class TaskData:
    """One split of one task, fully in memory."""
    inputs: Tensor           # image: uint8 N x 3 x H x W ; text: int64 N x T (0-padded)
    labels: Tensor           # int64 N
    classes: list[str]
    modality: str

    def __len__(self):
        return len(self.labels)

    def subset(self, indices: Tensor) -> "TaskData":
        return TaskData(self.inputs[indices], self.labels[indices], self.classes, self.modality)


# --------------------------------------------------------------------------- reading the layout

def task_folder(cfg, task, split: str) -> Path:
    """<root>/<split>/<task>, with a UserError naming the layout when it is not there."""
    if split not in SPLITS:
        raise UserError(f"Unknown split {split!r}; use 'train' or 'test'.")
    root = cfg.root_of(task)
    layout = f"{root}/{{train,test}}/<task>/<class>/<file>"
    hint = f" (run `{cfg.prepare_command}`)" if cfg.prepare_command else ""
    if not (root / split).is_dir():
        raise UserError(f"Data of config '{cfg.name}' not found: expected the layout {layout}{hint}.")
    folder = root / split / task.name
    if not folder.is_dir():
        raise UserError(f"Task folder {folder} is missing: expected the layout {layout}{hint}.")
    return folder


def class_folders(cfg, task) -> list[str]:
    """The task's class names, sorted: a label is a position in this list (as ImageFolder's), so every split
    must hold the same class folders, and as many as the config's num_classes (the model's outputs)."""
    folders = [task_folder(cfg, task, split) for split in SPLITS]
    # a hidden folder (.ipynb_checkpoints, a tool's cache) is not a class
    train, test = found = [sorted(entry.name for entry in os.scandir(folder)
                                  if entry.is_dir() and not entry.name.startswith(".")) for folder in folders]
    for folder, classes in zip(folders, found):
        if not classes:
            raise UserError(f"Task folder {folder} has no class folders: expected <class>/<file> inside it.")
    if train != test:
        # quoted: a name differing only in a trailing space or a lookalike letter is then seen
        only_train, only_test = (", ".join(map(repr, sorted(set(a) - set(b)))) or "none"
                                 for a, b in ((train, test), (test, train)))
        raise UserError(f"The class folders of {folders[0]} and {folders[1]} differ (only in train: {only_train}; "
                        f"only in test: {only_test}); give both splits the same class folders, since a label is a "
                        f"class's place in their sorted list.")
    if len(train) != task.num_classes:
        raise UserError(f"Task {task.name} has {len(train)} class folders in {folders[0]} and {folders[1]} but "
                        f"num_classes {task.num_classes} in config '{cfg.name}'; make the two agree.")
    return train


def scan_samples(cfg, task, split: str) -> tuple[list[tuple[str, int]], list[str]]:
    """(file, label) pairs in ImageFolder order (sorted classes, sorted files) and the class names. Hidden files and
    folders are no samples (macOS's ._<name> copies, .ipynb_checkpoints)."""
    classes = class_folders(cfg, task)
    folder = task_folder(cfg, task, split)
    extensions = IMAGE_EXTENSIONS if task.modality == "image" else (".txt",)
    samples = [(str(path), label) for label, name in enumerate(classes)
               for path in sorted((folder / name).rglob("*"))
               if path.suffix.lower() in extensions and path.is_file()
               and not any(part.startswith(".") for part in path.relative_to(folder / name).parts)]
    counts = np.bincount([label for _, label in samples], minlength=len(classes))
    for name, count in zip(classes, counts):
        if count == 0:
            kind = f"image files ({', '.join(extensions)})" if task.modality == "image" else ".txt caption files"
            raise UserError(f"Class folder {folder / name} has no {kind}.")
    return samples, classes


def data_fingerprint(cfg, task) -> str:
    """utils.provenance.files_fingerprint of every sample file of `task`'s two splits, the files a run of the task
    reads: regenerated or edited data redoes the runs that trained on it."""
    files = [path for split in SPLITS for path, _ in scan_samples(cfg, task, split)[0]]
    return files_fingerprint(files, cfg.root_of(task))


def read_image(path: str, size: int) -> Image.Image:
    """An RGB image of size x size (resized when the file differs); UserError naming a bad file."""
    try:
        with Image.open(path) as img:
            img = as_8_bit(img).convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise UserError(f"Cannot read image {path} ({type(err).__name__}); replace or delete it.") from None
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    return img


def as_8_bit(img: Image.Image) -> Image.Image:
    """A 16-bit grayscale image (mode I;16 or I, e.g. microscopy PNGs) scaled to 8 bits; other images as they are
    (Pillow's conversion of these to RGB clips every value above 255 to white)."""
    if img.mode.startswith("I;16") or img.mode == "I":
        pixels = np.asarray(img, dtype=np.float64) / 257.0
        return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
    return img


def read_caption(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        raise UserError(f"Caption file {path} is not valid UTF-8; re-save it as UTF-8.") from None


def estimated_bytes(cfg, task, num_samples: int) -> int:
    """Size of the split once decoded into memory."""
    if task.modality == "image":
        return num_samples * 3 * cfg.image_size ** 2
    return num_samples * cfg.max_text_length * 8


def load_split(cfg, task, split: str) -> TaskData:
    """Decode a whole split into memory: images uint8 N x 3 x S x S, text int64 N x T."""
    samples, classes = scan_samples(cfg, task, split)
    labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
    files = [path for path, _ in samples]
    bar = dict(desc=f"read {task.name}/{split}", leave=False, delay=1.0, disable=None)
    if task.modality == "image":
        size = cfg.image_size
        inputs = torch.empty(len(files), 3, size, size, dtype=torch.uint8)
        for i, path in enumerate(tqdm(files, **bar)):
            inputs[i] = torch.from_numpy(np.array(read_image(path, size))).permute(2, 0, 1)
    else:
        inputs = encode_batch([read_caption(path) for path in tqdm(files, **bar)], cfg)
    return TaskData(inputs, labels, classes, task.modality)


def load_paired_split(cfg, task, split: str) -> tuple[TaskData, TaskData]:
    """`task`'s split and, sample for sample in the same order, its paired task's (cfg.paired: the same
    samples in the other modality, matched by class folder and file stem). UserError when a sample of
    `task` has no partner."""
    partner = cfg.task(cfg.paired[task.name]) if task.name in cfg.paired else None
    if partner is None:
        raise UserError(f"Config '{cfg.name}' pairs task {task.name} with no task of the other modality.")
    own, partner_data = load_split(cfg, task, split), load_split(cfg, partner, split)
    partner_index = {key: i for i, key in enumerate(sample_keys(cfg, partner, split))}
    order = []
    for key in sample_keys(cfg, task, split):
        if key not in partner_index:
            raise UserError(f"Sample {'/'.join(key)} of task {task.name} ({split}) has no partner in its paired "
                            f"task {partner.name}: paired tasks need the same <class>/<file stem> samples.")
        order.append(partner_index[key])
    return own, partner_data.subset(torch.tensor(order, dtype=torch.int64))


def sample_keys(cfg, task, split: str) -> list[tuple[str, str]]:
    """(class folder, file stem) of every sample, in load_split's order: what pairs two tasks' samples. UserError
    when two files share one (0001.png and 0001.jpg, or in two subfolders): which one is the partner is unknown."""
    samples, classes = scan_samples(cfg, task, split)
    keys = [(classes[label], Path(path).stem) for path, label in samples]
    counts = Counter(keys)
    repeated = sorted(key for key, count in counts.items() if count > 1)
    if repeated:
        raise UserError(f"Task {task.name} ({split}) holds {counts[repeated[0]]} files of the sample "
                        f"{'/'.join(repeated[0])}; paired tasks match samples by <class>/<file stem>, so give each "
                        f"sample one file.")
    return keys


# --------------------------------------------------------------------------- validation split

def split_indices(labels: Tensor, val_fraction: float, seed: int):
    """Seeded (train, val) index tensors, each sorted, stratified: each class keeps its proportion."""
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"val_fraction must be in [0, 1), got {val_fraction}.")
    generator = torch.Generator().manual_seed(seed)
    val = []
    for group in (torch.nonzero(labels == c).flatten() for c in labels.unique()):
        num_val = min(len(group) - 1, max(1, round(len(group) * val_fraction))) if val_fraction > 0 else 0
        val.append(group[torch.randperm(len(group), generator=generator)[:num_val]])
    is_val = torch.zeros(len(labels), dtype=torch.bool)
    is_val[torch.cat(val)] = True
    return torch.nonzero(~is_val).flatten(), torch.nonzero(is_val).flatten()


# --------------------------------------------------------------------------- batches

def _normalise(x: Tensor, task, device) -> Tensor:
    mean = torch.tensor(task.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(task.std, device=device).view(1, 3, 1, 1)
    return (x.float() / 255.0 - mean) / std


def random_crop_flip(x: Tensor, generator, crop: bool) -> Tensor:
    """Per-sample random crop (zero padding 4, as torchvision's RandomCrop) and horizontal flip."""
    b, _, h, w = x.shape
    if crop:
        padded = torch.nn.functional.pad(x, (CROP_PADDING,) * 4)
        dy = torch.randint(0, 2 * CROP_PADDING + 1, (b,), generator=generator).to(x.device)
        dx = torch.randint(0, 2 * CROP_PADDING + 1, (b,), generator=generator).to(x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]   # b 1 h 1
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]   # b 1 1 w
        batch = torch.arange(b, device=x.device)[:, None, None, None]
        chan = torch.arange(3, device=x.device)[None, :, None, None]
        x = padded[batch, chan, rows, cols]
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


class TaskLoader:
    """In-memory batches of one split: seeded shuffling and tensor-op augmentation."""

    def __init__(self, data: TaskData, task, cfg, batch_size, shuffle, augment, device, seed):
        self.device = torch.device(device)
        self.inputs = data.inputs.to(self.device)
        self.labels = data.labels.to(self.device)
        self.data, self.task, self.cfg = data, task, cfg
        self.batch_size, self.shuffle, self.augment, self.seed = batch_size, shuffle, augment, seed
        self.epoch = 0      # each pass draws a new, reproducible order and augmentation

    def __len__(self):
        return math.ceil(len(self.labels) / self.batch_size)

    @property
    def num_samples(self):
        return len(self.labels)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        self.epoch += 1
        n = len(self.labels)
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size].to(self.device)
            yield self._inputs(self.inputs[idx], generator), self.labels[idx]

    def _inputs(self, x, generator):
        if self.task.modality != "image":
            return x
        if self.augment and self.cfg.train_augment != "none":
            x = random_crop_flip(x, generator, crop=self.cfg.train_augment == "crop_flip")
        return _normalise(x, self.task, self.device)


def fits_in_memory(cfg, task, num_samples: int) -> bool:
    return task.modality != "image" or estimated_bytes(cfg, task, num_samples) < IN_MEMORY_LIMIT_BYTES


def task_loaders(cfg, task, *, batch_size=32, val_batch_size=100, val_fraction=None, seed=0, split_seed=None,
                 device="cpu", in_memory=None):
    """(train, val, test) loaders; train shuffled + augmented by `seed`, val carved from train by `split_seed`
    (default: `seed`), so runs that differ in their training seed alone can share one split.

    val_fraction None means the config's; 0 means val is the test split (the original's behaviour).
    `in_memory` None picks the path by the decoded size of the train split; True/False forces one
    (benchmarks, tests).
    """
    val_fraction = cfg.val_share(val_fraction)
    train_samples, _ = scan_samples(cfg, task, "train")
    test_samples, _ = scan_samples(cfg, task, "test")
    if in_memory is None:
        in_memory = fits_in_memory(cfg, task, len(train_samples) + len(test_samples))
    train_labels = torch.tensor([label for _, label in train_samples], dtype=torch.int64)
    train_idx, val_idx = split_indices(train_labels, val_fraction, seed if split_seed is None else split_seed)
    if val_fraction > 0 and len(val_idx) == 0:     # its accuracy would read 0, and every decision would pass
        raise UserError(f"Task {task.name} has no validation sample, since every class has one training sample and "
                        f"training keeps it; give a class at least 2 training samples, or set val_fraction to 0 (the "
                        f"decisions then read the test split).")
    evaluation = dict(shuffle=False, augment=False, device=device, seed=seed)
    if in_memory or task.modality != "image":
        full_train = load_split(cfg, task, "train")
        train = TaskLoader(full_train.subset(train_idx), task, cfg, batch_size, shuffle=True,
                           augment=True, device=device, seed=seed)
        test = TaskLoader(load_split(cfg, task, "test"), task, cfg, val_batch_size, **evaluation)
        val = TaskLoader(full_train.subset(val_idx), task, cfg, val_batch_size, **evaluation) \
            if val_fraction > 0 else test
    else:
        train = FolderTaskLoader(cfg, task, "train", train_idx, batch_size, shuffle=True, augment=True,
                                 device=device, seed=seed)
        test = FolderTaskLoader(cfg, task, "test", torch.arange(len(test_samples)), val_batch_size,
                                **evaluation)
        val = FolderTaskLoader(cfg, task, "train", val_idx, val_batch_size, **evaluation) \
            if val_fraction > 0 else test
    return train, val, test


class FolderTaskLoader:
    """The DataLoader path for image tasks too large to hold in memory (torchvision's ImageFolder, restricted to
    `indices` and resizing to the config's size); batches as TaskLoader's."""

    def __init__(self, cfg, task, split, indices, batch_size, shuffle, augment, device, seed):
        from torchvision import transforms
        from torchvision.datasets import ImageFolder
        steps = []
        if augment and cfg.train_augment == "crop_flip":
            steps.append(transforms.RandomCrop(cfg.image_size, padding=CROP_PADDING))
        if augment and cfg.train_augment != "none":
            steps.append(transforms.RandomHorizontalFlip())
        steps.append(transforms.PILToTensor())      # uint8; normalised on the device, per batch
        self.dataset = ImageFolder(str(task_folder(cfg, task, split)), transform=transforms.Compose(steps),
                                   loader=partial(read_image, size=cfg.image_size))
        self.dataset.samples = [self.dataset.samples[i] for i in indices.tolist()]
        self.dataset.targets = [label for _, label in self.dataset.samples]
        self.device, self.task, self.seed, self.epoch = torch.device(device), task, seed, 0
        self.loader_args = dict(batch_size=batch_size, shuffle=shuffle, num_workers=min(4, os.cpu_count() or 1),
                                pin_memory=self.device.type == "cuda", persistent_workers=False)

    def __len__(self):
        return math.ceil(len(self.dataset) / self.loader_args["batch_size"])

    @property
    def num_samples(self):
        return len(self.dataset)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        self.epoch += 1
        loader = torch.utils.data.DataLoader(self.dataset, generator=generator, **self.loader_args)
        try:
            for x, y in loader:
                yield _normalise(x.to(self.device, non_blocking=True), self.task, self.device), y.to(self.device)
        except UserError as err:
            # A worker's UserError comes back wrapped with its traceback; keep the one sentence.
            raise UserError(str(err).strip().splitlines()[-1].split("UserError: ")[-1]) from None
