"""Neural networks used by the denoising methods (PyTorch)."""
