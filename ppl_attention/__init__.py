"""ppl_attention."""
