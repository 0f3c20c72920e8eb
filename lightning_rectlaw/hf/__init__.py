"""Hugging Face models and text for the plugin: ``CausalLMModule`` (a causal LM from a hub id,
a local directory or a ``transformers`` config) and ``TextDataModule`` (packed text blocks).

Imports Lightning, torch, torchmetrics and (lazily) transformers, and the core's file helpers.
"""
