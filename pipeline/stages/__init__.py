"""Entry points of the DVC stages, exactly those of dvc.yaml and tuning/dvc.yaml: one module per stage, named as it
(run as `python -m pipeline.stages.<stage>`). Each only wires: it parses paths, loads its params section, calls the
library and writes its outputs."""
