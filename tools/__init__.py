"""Tools around the pipeline (git, DVC, renderers): stages never import them, so editing one
reruns nothing."""
