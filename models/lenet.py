"""CPG LeNet-5 with per-task heads, the layer sizes of Pick-a-back's CIFAR-100 model.

features: conv 3->c1 k5 (no bias), BN, ReLU, avgpool 2 | conv c1->c2 k5 (no bias), BN, ReLU, avgpool 2
classifier body: flatten (channel-major) -> fc 25*c2 -> f1, ReLU -> fc f1 -> f2, ReLU
head (per task, private): Linear(f2 at the task's own width, num_classes)

Widths at CLI multiplier m: floor(base * sqrt(m)) for c1=6, c2=16, f1=120, f2=84 (m=2: 8, 22, 169, 118);
flattening is channel-major, so a grown fc1 keeps the old 25*c2 inputs in its first columns. An adaptive
5x5 average pool lets images larger than 32x32 through (at 32x32 it is the identity). Images only; the
`paper` and `demo` profiles are the same network. Maskable weights: the two convs and the two fc weights;
private per task: the head, BN parameters and statistics, fc biases. Init as the original: conv
kaiming-normal (fan_out, relu), fc and head N(0, 0.01) with bias 0, BN (1, 0).
"""
import math

import torch
from torch import nn

BASE_WIDTHS = {"conv1": 6, "conv2": 16, "fc1": 120, "fc2": 84}
PROFILES = ("paper", "demo")


def lenet_widths(width_mult):
    scale = math.sqrt(width_mult)
    return {name: int(math.floor(base * scale)) for name, base in BASE_WIDTHS.items()}


class LeNet5(nn.Module):
    modalities = ("image",)

    def __init__(self, profile="paper", width_mult=1.0):
        super().__init__()
        self.profile, self.width_mult = profile, width_mult
        self.widths = lenet_widths(width_mult)
        c1, c2, f1, f2 = (self.widths[k] for k in ("conv1", "conv2", "fc1", "fc2"))
        self.conv1 = nn.Conv2d(3, c1, 5, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, 5, bias=False)
        self.bn2 = nn.BatchNorm2d(c2)
        self.pool = nn.AvgPool2d(2)
        self.to_5x5 = nn.AdaptiveAvgPool2d(5)
        self.fc1 = nn.Linear(25 * c2, f1)
        self.fc2 = nn.Linear(f1, f2)
        self.heads = nn.ModuleDict()
        self._init_body()

    def _init_body(self):
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        for fc in (self.fc1, self.fc2):
            nn.init.normal_(fc.weight, 0.0, 0.01)
            nn.init.zeros_(fc.bias)

    def maskable_modules(self):
        return {"conv1": self.conv1, "conv2": self.conv2, "fc1": self.fc1, "fc2": self.fc2}

    @staticmethod
    def dim0_blocks(name):
        return 1

    def add_task_modules(self, name, modality, num_classes, adapter_config, width_mult):
        """The task's head, at the task's own width (its fc2 units)."""
        if modality not in self.modalities:
            raise ValueError(f"lenet5 takes images only, task {name!r} is {modality}")
        head = nn.Linear(lenet_widths(width_mult)["fc2"], num_classes)
        nn.init.normal_(head.weight, 0.0, 0.01)
        nn.init.zeros_(head.bias)
        self.heads[name] = head

    def task_modules(self, name):
        """The task's private sub-modules (state-dict prefix -> module)."""
        return {"heads": self.heads[name]}

    def features(self, x):
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        x = self.pool(torch.relu(self.bn2(self.conv2(x))))
        x = self.to_5x5(x).flatten(1)
        return torch.relu(self.fc2(torch.relu(self.fc1(x))))

    def forward(self, x, task):
        head = self.heads[task]
        # a task narrower than the body reads only its own units; the extra ones belong to later tasks
        return head(self.features(x)[:, :head.in_features])
