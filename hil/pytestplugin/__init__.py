"""hil's pytest plugin: hooks (options, markers, reporting), fixtures, rig-side servers, run records."""
