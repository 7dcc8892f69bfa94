"""DeciLM-style heterogeneous Llama (``model_type: nemotron-nas``), shipped inside each child.

These two files are copied next to a distilled child's weights and named by the checkpoint's
``auto_map``, so ``transformers`` loads the child with ``trust_remote_code=True``; they import
only torch and transformers.
"""
