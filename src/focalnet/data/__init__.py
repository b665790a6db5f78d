"""Data: built-in data sets, synthetic dense-prediction scenes, image loading and transforms."""
