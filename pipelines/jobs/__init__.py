"""One module per template: TEMPLATE, preflight, build_pipeline."""
