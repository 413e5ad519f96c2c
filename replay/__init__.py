"""Batch recomputation over the event archive: the events source, the batch month, disputes."""
