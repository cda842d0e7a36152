"""edge-agent: camera frames -> image-classification API -> MQTT."""

__version__ = "0.1.0"
