"""Teacher backends, paired reasoning ON/OFF SFT generation, RL rollouts and verifiers (DESIGN §4)."""
