"""Per-mode instructions of a generation step (issue 23 item 7): what the teacher is told
after each prompt is configurable per mode, recorded only when set, keyed into the
request keys, checked for the marker the prompted format needs, and found again through
the lineage by GRPO's prompt builder (the one function generation uses)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.scripted_teacher import install

ON = 'Write the calculation in one short line, then a last line "Final answer: <number>".'
OFF = "Give the answer in one short sentence."
QUESTION = [{"role": "user", "content": "Tom has 2 apples and buys 3 more. How many?"}]


def test_teacher_messages_append_the_step_instruction_per_mode():
    from thinkforge.generators.config import SftConfig
    from thinkforge.generators.reasoning import PROMPTED_ON_INSTRUCTION, teacher_messages

    config = SftConfig(instructions={"on": ON, "off": OFF})
    on = teacher_messages(QUESTION, "on", "prompted", config.instructions)
    off = teacher_messages(QUESTION, "off", "prompted", config.instructions)
    assert on[0] == {"role": "system", "content": "detailed thinking on"}
    assert on[1]["content"] == QUESTION[0]["content"] + "\n\n" + ON
    assert off[1]["content"] == QUESTION[0]["content"] + "\n\n" + OFF
    # unset: the defaults (ON asks for step-by-step reasoning, OFF adds nothing); a dict works
    # too (what a manifest records), and the caller's messages are not changed
    assert teacher_messages(QUESTION, "on", "prompted")[1]["content"] == \
        QUESTION[0]["content"] + PROMPTED_ON_INSTRUCTION
    assert teacher_messages(QUESTION, "on", "prompted", {"on": None, "off": OFF}) == \
        teacher_messages(QUESTION, "on", "prompted")
    assert teacher_messages(QUESTION, "off", "native", {"off": OFF})[1]["content"].endswith(OFF)
    assert QUESTION[0]["content"].endswith("How many?")


def test_an_on_instruction_without_the_final_answer_marker_is_refused():
    from thinkforge.generators.config import RolloutConfig, SftConfig

    with pytest.raises(ValidationError, match="Final answer"):
        SftConfig(instructions={"on": "Think briefly."})
    with pytest.raises(ValidationError, match="Final answer"):
        RolloutConfig(instructions={"on": "Think briefly."})
    # the native format reads <think> tags, not the marker: any text goes
    assert SftConfig(reasoning_format="native", instructions={"on": "Think briefly."})
    # YAML 1.1 reads bare on/off keys as booleans: taken back as the mode names
    assert SftConfig(instructions={True: ON, False: OFF}).instructions.off == OFF


def test_instructions_are_recorded_and_keyed_only_when_set():
    from thinkforge.generators.config import SftConfig
    from thinkforge.generators.engine import plan_requests

    plain, told = SftConfig(), SftConfig(instructions={"off": OFF})
    assert "instructions" not in plain.model_dump()  # records of existing steps unchanged
    assert told.model_dump()["instructions"] == {"on": None, "off": OFF}
    prompt = {"id": "p1", "input": QUESTION, "category": "math"}
    keys = [{p.key for p in plan_requests([prompt], c, ["off"], 1)} for c in (plain, told)]
    assert keys[0] != keys[1]
    assert plan_requests([prompt], told, ["off"], 1)[0].messages[1]["content"].endswith(OFF)


def test_grpo_prompts_are_the_messages_the_rollouts_were_generated_with(store, data_dir,
                                                                       monkeypatch):
    from thinkforge.curation.importer import ImportOptions, import_file
    from thinkforge.generators.config import BackendConfig, RolloutConfig
    from thinkforge.generators.reasoning import teacher_messages
    from thinkforge.generators.rollouts import generate_rollouts
    from thinkforge.manifests.selection import read_table
    from thinkforge.trainers.data import rollout_prompt_settings

    sent = {}

    def answer(request) -> str:
        sent[request.messages[-1]["content"].split("\n\n")[0]] = request.messages
        return "2 + 3 = 5\nFinal answer: 5"

    install(monkeypatch, answer)
    prompts = import_file(store, data_dir / "easy_arith.jsonl",
                          ImportOptions(name="easy", preset="gsm8k"))
    config = RolloutConfig(teacher=BackendConfig(model="scripted"), k=2, limit=3,
                           instructions={"on": ON, "off": OFF})
    rollouts = generate_rollouts(store, prompts, "r", config, progress=False)
    settings = rollout_prompt_settings(store, rollouts)  # what trainers/rl.py reads
    assert settings["instructions"] == {"on": ON, "off": OFF}
    inputs = {r["id"]: r["input"] for r in read_table(store, prompts).to_pylist()}
    rows = read_table(store, rollouts).to_pylist()
    assert rows
    for row in rows:
        given = inputs[row["prompt_id"]]
        question = given[-1]["content"]
        assert teacher_messages(given, row["reasoning"], settings["reasoning_format"],
                                settings["instructions"]) == sent[question]
        assert sent[question][-1]["content"].endswith(ON)
