"""Pure values and rules: config, models, stores, ports; imports nothing above it."""
