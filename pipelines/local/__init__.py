"""The DirectRunner stream runtime; only pipelines.core.launch imports it."""
