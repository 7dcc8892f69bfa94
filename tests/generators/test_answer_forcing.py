"""Answer forcing (s1's budget forcing) for the prompted ON format: a reply that stops
without its "Final answer:" line gets the marker appended and the teacher continues it.

The backend part runs a real transformers model built in the test
(tiny_model.build_forgetful_model): it writes "Two plus two" and stops, and after
"Final answer:" it writes " 4".
"""

from __future__ import annotations

import pytest
from thinkforge.generators.backends import ChatRequest, Sampling

from tests.generators.tiny_model import build_forgetful_model


@pytest.fixture(scope="module")
def forgetful(tmp_path_factory):
    pytest.importorskip("transformers")
    return build_forgetful_model(tmp_path_factory.mktemp("forgetful"))


def _transformers(path):
    from thinkforge.generators.backends import make_backend
    from thinkforge.generators.config import BackendConfig

    return make_backend(BackendConfig(model=str(path), device="cpu", cpu_threads=1), str(path))


def test_transformers_backend_continues_a_prefilled_reply(forgetful):
    backend = _transformers(forgetful)
    messages = [{"role": "user", "content": "What is 2 + 2?"}]
    greedy = Sampling(0.0, 1.0, 8, 0)
    plain, continued = backend.generate([
        ChatRequest("a", messages, greedy),
        ChatRequest("b", messages, greedy, "on", prefill="Two plus two\nFinal answer:")])
    assert (plain.text, plain.finish_reason) == ("Two plus two", "stop")
    # only what follows the prefill comes back, and its tokens: " ", "4", end of turn
    assert (continued.text, continued.finish_reason, continued.completion_tokens) == ("4", "stop", 3)
    assert continued.prompt_tokens > plain.prompt_tokens  # the prefill was part of the prompt
