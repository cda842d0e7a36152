"""What the agent keeps on disk, in its state directory: small JSON files (the
budget's claims, the settings made over MQTT) and the SQLite event store.

Storage sits below the outputs and the web side: it imports neither.  They read
the events through one interface, :class:`~.reader.EventReader`, never through
the concrete store; only the agent opens, writes and closes it."""
