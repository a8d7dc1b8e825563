"""Feature-level layers: global mean-variance normalisation and SpecAugment."""
