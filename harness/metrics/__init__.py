"""Pure scorers: predictions and hidden ground truth in, metrics out."""
