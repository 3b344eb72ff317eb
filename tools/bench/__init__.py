"""Benchmarks and research instruments: they measure the product, they are not part of it.

Each module answers one question and runs from the repository root as `python -m tools.bench.<name>`; each
prints a table and, as its last line, the same figures as JSON (harness.emit).
* images    -- the Perceiver on real image tasks, per patch size, against a small CNN given the same time
* model     -- a training step's throughput, CPG's masks vs a plain model
* relations -- whether the config's designed relations are in the step-1 models
* variants  -- step 3-1's settings and scores judged by one transfer control, and the pick across probe seeds
"""
