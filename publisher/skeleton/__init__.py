"""The starter project `publisher init` writes and `publisher demo` runs on outside a project.

Its files are links to the repository's own documented ``config.yaml``, ``templates/`` and
one sample issue, so there is one copy to keep up to date; a wheel stores the files the
links point to.
"""
