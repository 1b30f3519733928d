"""The message bus: NATS connection, subject names, message types, the embedded server."""
