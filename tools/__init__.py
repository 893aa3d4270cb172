"""Tools around the pipeline (git, DVC, renderers, clusters): stages never import them, so editing
one reruns nothing.

Importing this package pins the numerical environment first, as `stages` does: a tool run from a
shell (`python -m tools.<name>`) gets the same pins as the stages, whatever it imports next.
"""

import rlrepro  # noqa: F401
