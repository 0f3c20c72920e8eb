"""Hugging Face models and data for the plugin, one module a job:

- ``model``: ``LMModule`` (a decoder-only or encoder-decoder LM from a hub id, a local directory
  or a ``transformers`` config; ``CausalLMModule`` takes decoder-only ones only);
- ``text``: ``TextDataModule`` (packed text blocks);
- ``pairs``: ``SFTDataModule`` (prompt/response pairs and chats), read by ``formats``, encoded by
  ``encoding``, batched by ``batching``;
- ``tokenizer``: the byte-level and Hugging Face tokenizers behind one view;
- ``embedded``: text and pairs that ship with Python.

Imports Lightning, torch, torchmetrics and (lazily) transformers, and the core's file helpers.
"""
