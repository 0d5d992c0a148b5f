"""Sources and sinks: text, Pub/Sub, tables. The same graph on every runner."""
