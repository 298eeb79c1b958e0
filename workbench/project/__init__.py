"""The project file: model spec, data and training settings, run history; starter templates."""
