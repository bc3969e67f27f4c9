"""The data error: one line naming the file and what was wrong with it."""


class DatasetError(ValueError):
    """A data set that cannot be read as described: missing or unreadable files, an image and
    label of different sizes, or label values outside the class range."""
