"""Newsroom publishing pipeline: sources in; feeds, digests and social posts out."""
