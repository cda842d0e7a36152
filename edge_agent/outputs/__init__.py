"""Where results go: MQTT (with Home Assistant discovery and the control topics)
and the local event store. The agent fans out to them (``dispatch.py``)."""
