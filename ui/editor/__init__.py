"""The model editor: palette, stack, inspector, form fields, summary bar."""
