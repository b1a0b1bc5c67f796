"""The pipeline's stages: sharpness detection, optical flow, condition generation, synthesis."""
