"""What a search penalises: the LiteRT latency table (measured here or on a phone) and the cost model (MACs or ms) over a space."""
