"""Fashion-MNIST pipeline. The library is in families: data/, model/, evaluation/, drift/, tuning/, accept/,
pictures/ and reports/, each saying in its __init__ which module to open first; the modules at this root are what
every family shares (params, files, errors, lineage, the command-line frame). Entry points: pipeline/stages/ holds
exactly the DVC stages, one module each named as its stage; pipeline/commands/ the other commands."""
