"""Noise schedules and samplers for the diffusion blur model (DDPM training, DDIM sampling)."""
