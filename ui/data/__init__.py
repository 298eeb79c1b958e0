"""Data in the window: the Data dock (browser of the samples, class balance, statistics and
problems) and the augmentation pipeline editor with its live preview."""
