"""Platform-level end-to-end tests: all four services as real processes on one config file."""
