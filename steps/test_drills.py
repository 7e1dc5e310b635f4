"""Bind every feature under `features/` (bdd_features_base_dir) to pytest, once."""

from pytest_bdd import scenarios

scenarios(".")
