"""publisher: an email newsletter and RSS publisher for a publication that lives in Markdown."""

__version__ = "0.1.0"
