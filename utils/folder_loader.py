"""The DataLoader path for image tasks too large to hold in memory (torchvision's ImageFolder)."""
import math
import os
from functools import partial

import torch
from torchvision import transforms
from torchvision.datasets import ImageFolder

from utils.data import CROP_PADDING, _normalise, read_image, task_folder
from utils.errors import UserError


class _CheckedImageFolder(ImageFolder):
    """ImageFolder restricted to a subset, resizing to the config size, naming unreadable files."""

    def __init__(self, folder, size, indices, transform):
        super().__init__(str(folder), transform=transform, loader=partial(read_image, size=size))
        self.samples = [self.samples[i] for i in indices.tolist()]
        self.targets = [label for _, label in self.samples]


class FolderTaskLoader:
    """DataLoader path for image tasks too large for memory; batches as TaskLoader's."""

    def __init__(self, cfg, task, split, indices, batch_size, shuffle, augment, device, seed,
                 num_workers=None):
        steps = []
        if augment and cfg.train_augment == "crop_flip":
            steps.append(transforms.RandomCrop(cfg.image_size, padding=CROP_PADDING))
        if augment:
            steps.append(transforms.RandomHorizontalFlip())
        steps.append(transforms.PILToTensor())      # uint8; normalised on the device, per batch
        folder = task_folder(cfg, task, split)
        self.dataset = _CheckedImageFolder(folder, cfg.image_size, indices, transforms.Compose(steps))
        self.device, self.task, self.seed, self.epoch = torch.device(device), task, seed, 0
        workers = min(4, os.cpu_count() or 1) if num_workers is None else num_workers
        self.loader_args = dict(batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                                pin_memory=self.device.type == "cuda",
                                persistent_workers=False)

    def __len__(self):
        return math.ceil(len(self.dataset) / self.loader_args["batch_size"])

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        self.epoch += 1
        loader = torch.utils.data.DataLoader(self.dataset, generator=generator, **self.loader_args)
        try:
            for x, y in loader:
                yield _normalise(x.to(self.device, non_blocking=True), self.task, self.device), \
                    y.to(self.device)
        except UserError as err:
            # A worker's UserError comes back wrapped with its traceback; keep the one sentence.
            raise UserError(str(err).strip().splitlines()[-1].split("UserError: ")[-1]) from None
