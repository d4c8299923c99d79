"""Datasets of the harness: each becomes a split folder of `inputs/` (sandbox) and `hidden/` (truth)."""
