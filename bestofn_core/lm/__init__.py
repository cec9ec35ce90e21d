"""Language models: BaseLM, LM, the response cache and call history."""
