"""Configuration: YAML files validated by pydantic models (see `schema`)."""
