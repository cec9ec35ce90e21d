"""Predictors: Predict and ChainOfThought."""
