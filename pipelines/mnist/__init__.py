"""The MNIST jobs: batch (BigQuery to BigQuery) and stream (Pub/Sub to Pub/Sub)."""
