"""Pure scorers: predictions and ground truth in, metrics out. No I/O beyond what their callers hand them."""
