"""face-vqvae: ProbTalk3D (two-stage VQ-VAE) speech + style -> 3D face motion, as an Orate model service."""
