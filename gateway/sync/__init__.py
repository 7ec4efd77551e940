"""Cloud sync over MQTT: the topic contract, the outbox drainer, command
verification, and the connection that survives broker restarts."""
