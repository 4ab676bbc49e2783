"""Exactly once: the driver collects the write stage's receipts and has each complete shard published, checked
whole, as table files followed by its commit marker."""
