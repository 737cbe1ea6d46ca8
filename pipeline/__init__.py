"""Fashion-MNIST pipeline: one module per DVC stage plus a few shared helpers."""
