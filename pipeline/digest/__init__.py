"""Email digests: editions, rendering, sending."""
