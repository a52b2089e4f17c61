"""Training code for aecompress (PyTorch). Not imported by the runtime."""
