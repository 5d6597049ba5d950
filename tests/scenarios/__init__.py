"""Whole-trace scenarios across the layers: real framework usage, both frameworks nested, lifecycle, faults and load."""
