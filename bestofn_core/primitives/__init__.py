"""Primitives: Example, Prediction, Module, callbacks, usage tracking."""
