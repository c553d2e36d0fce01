"""Data: the transition dataset, validation, file formats, preprocessing, collection."""
