"""The Kafka consumer shell: fetch, decide by the delivery policy, settle, commit; dead letters and statuses."""
