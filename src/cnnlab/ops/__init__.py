"""Primitive operations, one family per file, each a Function with forward and backward."""
