"""Run Distributed: the torchrun command and a local launch."""
