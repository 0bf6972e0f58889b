"""Layers that own parameters, call ops, keep caches and know train/eval mode."""
from .module import Module, Sequential
from .parameter import Parameter
