"""Tracer order matching engine: an in-memory limit order book per market behind a REST API."""
