"""Run one SFT generation in its own process (the SIGKILL resume test kills it mid-run)."""

import sys

from thinkforge.generators.sft import SftConfig, generate_sft
from thinkforge.manifests import DatasetStore

if __name__ == "__main__":
    store_root, model, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = DatasetStore(store_root)
    config = SftConfig(teacher={"model": model, "batch_size": 1}, limit=limit,
                       sampling_on={"max_new_tokens": 12}, sampling_off={"temperature": 0, "max_new_tokens": 12})
    manifest = generate_sft(store, store.resolve("gsm8k"), "gsm8k-sft", config, progress=False)
    print(manifest.ref)
