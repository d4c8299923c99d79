"""Pure scorers: ICDAR2013 DetEval and ICDAR2015 IoU for text detection, and their records."""
