"""Dataset generators, importers and converters that write splits in the harness layout."""
