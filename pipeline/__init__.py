"""Corpus stages: plain-Python rules per stage, and the one Spark module that runs them."""
