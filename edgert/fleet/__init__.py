"""Fleet delivery: MQTT commands and state, bundle downloads."""
