"""The names of a dataset's splits, in the order every dataset here builds and reports them."""

from __future__ import annotations

__all__ = ["SPLITS"]

# Training reads "train", chooses on "validation" and scores "test" once.
SPLITS = ("train", "validation", "test")
