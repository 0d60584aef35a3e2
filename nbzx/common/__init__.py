"""Shared by every layer above: configuration, Kafka clients, logging, health routes, topic followers."""
