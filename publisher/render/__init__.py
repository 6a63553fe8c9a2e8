"""Pure rendering: Markdown to HTML and text, templates, inlined emails, pages."""
