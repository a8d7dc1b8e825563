"""Orate's common library: settings, Kafka bus, Redis store, artifacts, events, metrics, media, serving."""
