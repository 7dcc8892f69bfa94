"""Teacher backends, paired reasoning ON/OFF SFT generation, RL rollouts and verifiers.

Public entry points (plain functions with pydantic configs, called by the CLI and recipes)::

    from thinkforge.generators.sft import SftConfig, generate_sft
    from thinkforge.generators.rollouts import RolloutConfig, generate_rollouts

Only ``manifests`` is imported from the project; torch, transformers, vllm and openai are
imported inside the backend that needs them.
"""
