"""Helpers any test may import (never a conftest: those are pytest's, per directory)."""
