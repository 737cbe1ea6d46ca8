"""Entry points: one module per DVC stage (run as `python -m pipeline.stages.<stage>`) and the adopt and predict
commands. Each only wires: it parses paths, loads its params section, calls the library and writes its outputs."""
