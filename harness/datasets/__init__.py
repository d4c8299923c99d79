"""Generators of the datasets that ship with the project (synthetic, deterministic from a seed)."""
