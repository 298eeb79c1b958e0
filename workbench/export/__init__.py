"""Export: one writer module per format family, verification in a fresh process."""
