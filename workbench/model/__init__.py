"""The model: layer catalog, typed parameters, the spec, shape inference, building, backbones, weights files."""
