"""The weekly post-deployment review: history read back, the report and its screenshot."""
