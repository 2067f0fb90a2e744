"""The stack's processes get one serving thread each unless the environment says otherwise."""

from __future__ import annotations

from bot.devstack import Stack, StackConfig


def test_serving_threads_per_process_and_overridable(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for name in ("TF_INTRA_OP_PARALLELISM_THREADS", "TF_INTER_OP_PARALLELISM_THREADS", "SHOP_TORCH_THREADS"):
        monkeypatch.delenv(name, raising=False)
    stack = Stack(StackConfig())
    rasa, actions, gateway = (stack.env_for(name) for name in ("rasa", "actions", "gateway"))
    assert rasa["TF_INTRA_OP_PARALLELISM_THREADS"] == rasa["TF_INTER_OP_PARALLELISM_THREADS"] == "1"
    assert actions["SHOP_TORCH_THREADS"] == "1" and "TF_INTRA_OP_PARALLELISM_THREADS" not in actions
    # the gateway starts training jobs: they keep TensorFlow's and torch's own defaults
    assert not {"TF_INTRA_OP_PARALLELISM_THREADS", "SHOP_TORCH_THREADS"} & set(gateway)
    monkeypatch.setenv("TF_INTRA_OP_PARALLELISM_THREADS", "2")
    assert stack.env_for("rasa")["TF_INTRA_OP_PARALLELISM_THREADS"] == "2"  # the operator's choice wins
