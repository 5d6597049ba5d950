"""Tests of the framework adapters, one folder each."""
