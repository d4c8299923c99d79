"""Model zoo: building blocks and networks of lightweight (NAS-style) classifiers."""
