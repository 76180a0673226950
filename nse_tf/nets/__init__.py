"""Keras networks from a NetworkSpec: layers of one branch, the child network, its model class, flip averaging, BN statistics, counting and inference."""
