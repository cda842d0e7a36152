"""Where results go: MQTT (with Home Assistant discovery and the control topics).
The agent fans out to every output (``dispatch.py``); ``registry.py`` builds them."""
