"""Gradual magnitude pruning schedule (Zhu & Gupta, 2017), driven once per optimizer step; with no ramp
(end <= begin) it is PackNet's one-shot pruning: the target at once, before the first step."""


def cubic_sparsity(step, begin, end, initial, target):
    """Sparsity at `step`: ramps from `initial` to `target` over [begin, end] with exponent 3."""
    if end <= begin:
        return target
    progress = min(max((step - begin) / (end - begin), 0.0), 1.0)
    return target + (initial - target) * (1.0 - progress) ** 3


class GradualPruner:
    """Calls `model.prune_active_task(s)` every `frequency` steps while the sparsity ramps up.

    The original's last update fell short of the end step (so a stage ended slightly under its
    target); here the step that reaches `end` always prunes to exactly the target.
    """

    def __init__(self, model, *, initial, target, begin, end, frequency):
        self.model = model
        self.initial, self.target = initial, target
        self.begin, self.end = begin, end
        self.frequency = max(1, frequency)
        self.step = begin
        self.last_update = begin
        if end <= begin:
            model.prune_active_task(target)     # a no-op when a resumed run was pruned already

    def __call__(self):
        self.step += 1
        due = self.step - self.last_update >= self.frequency or self.step == self.end
        if self.begin < self.step <= self.end and due:
            self.model.prune_active_task(cubic_sparsity(self.step, self.begin, self.end, self.initial, self.target))
            self.last_update = self.step
        # the optimizer's momentum still moves weights pruned earlier in this run
        self.model.zero_free_weights()

    def state_dict(self):
        return {"step": self.step, "last_update": self.last_update}

    def load_state_dict(self, state):
        self.step, self.last_update = state["step"], state["last_update"]

    def finish(self):
        """Reach the target even when the ramp was longer than the steps that ran."""
        if self.step < self.end:
            self.model.prune_active_task(self.target)
        self.model.zero_free_weights()
