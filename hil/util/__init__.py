"""Small helpers every layer may use: paths, temporary board directories, host processes, YAML, plots."""
