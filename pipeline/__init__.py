"""Fashion-MNIST pipeline: the library (data, model, training, evaluation, drift, reports, params); its entry points,
one per DVC stage plus the adopt and predict commands, are in pipeline/stages/."""
