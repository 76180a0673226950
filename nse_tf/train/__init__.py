"""Retraining a child network from scratch under any Keras backend: recipe, augmentation, optimizer, checkpoints, BN recalibration, the loop."""
