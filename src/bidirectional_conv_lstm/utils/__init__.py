"""Helpers the rest of the package shares: the hardware and its precision, CPU threads, pictures, model cards,
loading a saved model, uploading a model folder to the Hub."""
