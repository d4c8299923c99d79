"""Readers and writers of the file formats the harness scores (Robust Reading Competition text files)."""
