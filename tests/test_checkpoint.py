"""Tests for gpt.checkpoint: round trips, bit-exact resumption of a Trainer, atomic saves that survive
a crash, pruning, and a CheckpointError naming the file for every damaged or mismatched checkpoint."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
from minigrad.optim import AdamW

import gpt.checkpoint as checkpoint_mod
from gpt.checkpoint import CheckpointError, load_checkpoint, resolve, save_checkpoint
from gpt.data import DataLoader, GPTDataset
from gpt.model import GPTConfig, GPTModel
from gpt.tokenizer import BPETokenizer
from gpt.train import Trainer
from tests.cli_helpers import subprocess_env

CTX = 16
TEXT = "the cat sat on the mat. the dog sat on the log. a cat and a dog sat on a mat and a log.\n" * 4


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def tiny_model(vocab_size=40, seed=0, drop_rate=0.1, **overrides):
    mg.manual_seed(seed)
    return GPTModel(GPTConfig.from_preset("tiny", vocab_size=vocab_size, context_length=CTX, emb_dim=32,
                                          drop_rate=drop_rate, **overrides))


@pytest.fixture(scope="module")
def tokenizer():
    return BPETokenizer.train(TEXT, 270)


TRAIN_IDS = np.random.default_rng(7).integers(0, 40, CTX * 10 + 1)     # 10 windows: 5 batches of 2
VAL_IDS = np.random.default_rng(8).integers(0, 40, CTX * 4 + 1)
BATCHES_PER_EPOCH = 5


def build_run(total_steps, model=None):
    """A fresh model (unless given), AdamW with two parameter groups, shuffled loaders and a Trainer:
    dropout > 0 and shuffling, so resuming has random state to get right."""
    model = model if model is not None else tiny_model(seed=1)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer = AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-3)
    train_loader = DataLoader(GPTDataset(TRAIN_IDS, CTX, CTX), batch_size=2, shuffle=True, seed=5)
    val_loader = DataLoader(GPTDataset(VAL_IDS, CTX, CTX), batch_size=2, shuffle=False, drop_last=False)
    assert len(train_loader) == BATCHES_PER_EPOCH
    trainer = Trainer(model, optimizer, train_loader, val_loader, total_steps=total_steps, peak_lr=5e-3,
                      warmup_steps=3, initial_lr=1e-4, min_lr=1e-4, eval_freq=3, eval_iter=2)
    return model, optimizer, trainer


def stop_at(step):
    """An on_step callback that stops the run after ``step`` steps, as Ctrl-C does."""
    def on_step(trainer, loss):
        if trainer.state.step == step:
            trainer.request_stop()
    return on_step


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert sa[name].dtype == sb[name].dtype, name
        assert np.array_equal(sa[name], sb[name]), f"{name} differs"


def save_run(directory, model, optimizer, trainer, tokenizer=None, **kwargs):
    return save_checkpoint(directory, model, tokenizer=tokenizer, optimizer=optimizer,
                           trainer_state=trainer.state_dict(), info={"note": "test"}, **kwargs)


def resume_run(directory, total_steps):
    """Everything rebuilt from the checkpoint alone, into fresh objects."""
    ck = load_checkpoint(directory)
    model, optimizer, trainer = build_run(total_steps, model=ck.model)
    optimizer.load_state_dict(ck.optimizer_state)
    trainer.load_state_dict(ck.trainer_state)
    return model, optimizer, trainer


# --------------------------------------------------------------------------------------------------
# Round trip and bit-exact resumption
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("positions", [dict(pos_emb="rope"), dict(pos_emb="alibi"),
                                       dict(pos_emb="t5", num_buckets=8, max_distance=20),
                                       dict(pos_emb="rope", rope_scaling={"type": "ntk", "factor": 2.0})])
def test_round_trip_keeps_weights_config_tokenizer_and_info(tmp_path, tokenizer, positions):
    model = tiny_model(vocab_size=tokenizer.n_vocab, tie_weights=True, **positions)
    if model.rel_pos_bias is not None:   # T5's table starts at zero: make it worth saving
        model.rel_pos_bias.relative_attention_bias.weight.data[...] = np.random.default_rng(0).standard_normal((8, 2))
    path = save_checkpoint(tmp_path / "ck", model, tokenizer=tokenizer, info={"settings": {"lr": 0.5}}, step=7)
    assert path == tmp_path / "ck" / "step-000007"
    assert (tmp_path / "ck" / "latest").read_text().strip() == "step-000007"
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.path == path and ck.config == model.cfg and ck.info == {"settings": {"lr": 0.5}}
    assert_same_weights(ck.model, model)
    assert ck.model.out_head.weight is ck.model.tok_emb.weight          # still tied
    assert ck.tokenizer.encode(TEXT) == tokenizer.encode(TEXT)
    assert ck.optimizer_state is None and ck.trainer_state is None
    # the step directory itself is a checkpoint path too
    assert load_checkpoint(path).path == path
    # and the loaded model computes what the saved one did
    ids = np.arange(12)[None] % tokenizer.n_vocab
    model.eval(), ck.model.eval()
    with mg.no_grad():
        assert np.array_equal(model(ids).data, ck.model(ids).data)


def run_straight(total):
    model, _, trainer = build_run(total)
    trainer.run()
    return model, trainer


def run_interrupted(tmp_path, total, stop):
    model, optimizer, trainer = build_run(total)
    trainer.run(on_step=stop_at(stop))
    assert trainer.state.step == stop
    save_run(tmp_path / "run", model, optimizer, trainer)
    del model, optimizer, trainer
    model, optimizer, trainer = resume_run(tmp_path / "run", total)
    assert trainer.state.step == stop
    trainer.run()
    return model, trainer


@pytest.mark.parametrize("stop, total", [
    (4, 8),                          # in the middle of the first epoch (5 batches per epoch)
    (BATCHES_PER_EPOCH, 10),         # exactly at the end of the first epoch
    (6, 12),                         # one step into the second epoch, right after an evaluation
    (2 * BATCHES_PER_EPOCH, 13),     # at the end of the second epoch
])
def test_resume_gives_the_same_weights_as_one_uninterrupted_run(tmp_path, stop, total):
    straight_model, straight = run_straight(total)
    resumed_model, resumed = run_interrupted(tmp_path, total, stop)
    assert_same_weights(resumed_model, straight_model)
    assert resumed.state.train_losses == straight.state.train_losses
    assert resumed.state.val_losses == straight.state.val_losses
    assert resumed.state.track_lrs == straight.state.track_lrs
    assert resumed.state.tokens_seen == straight.state.tokens_seen
    assert resumed.state.epoch == straight.state.epoch


@settings(max_examples=6)
@given(stop=st.integers(1, 2 * BATCHES_PER_EPOCH + 2))
def test_resume_from_any_step_is_bit_exact(tmp_path_factory, stop):
    total = 2 * BATCHES_PER_EPOCH + 3
    tmp = tmp_path_factory.mktemp("resume")
    straight_model, _ = run_straight(total)
    resumed_model, _ = run_interrupted(tmp, total, stop)
    assert_same_weights(resumed_model, straight_model)


def test_resuming_twice_is_still_bit_exact(tmp_path):
    total = 13
    straight_model, _ = run_straight(total)
    model, optimizer, trainer = build_run(total)
    for stop in (3, 8):
        trainer.run(on_step=stop_at(stop))
        save_run(tmp_path / "run", model, optimizer, trainer)
        model, optimizer, trainer = resume_run(tmp_path / "run", total)
    trainer.run()
    assert_same_weights(model, straight_model)


# --------------------------------------------------------------------------------------------------
# Atomic saves, pruning
# --------------------------------------------------------------------------------------------------


def no_temporaries(directory):
    return [p.name for p in Path(directory).iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("fail_in", ["optimizer.safetensors", "tokenizer"])
def test_an_error_during_a_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch, tokenizer, fail_in):
    model, optimizer, trainer = build_run(6)
    trainer.run(on_step=stop_at(2))
    first = save_run(tmp_path, model, optimizer, trainer, tokenizer=tokenizer)
    saved_weights = {k: v.copy() for k, v in model.state_dict().items()}
    trainer.run(on_step=stop_at(4))

    class Crash(Exception):
        pass

    if fail_in == "tokenizer":
        def broken_save(path):
            Path(path).write_text("gpt-bpe v1\npattern")          # half a file, then the crash
            raise Crash("disk full")
        monkeypatch.setattr(tokenizer, "save", broken_save)
    else:
        real_save_file = checkpoint_mod.safetensors.save_file

        def broken_save_file(tensors, path, *args, **kwargs):
            if Path(path).name == fail_in:
                Path(path).write_bytes(b"\x08\x00\x00\x00")     # the first bytes, then the crash
                raise Crash("disk full")
            return real_save_file(tensors, path, *args, **kwargs)
        monkeypatch.setattr(checkpoint_mod.safetensors, "save_file", broken_save_file)

    with pytest.raises(Crash):
        save_run(tmp_path, model, optimizer, trainer, tokenizer=tokenizer)
    assert (tmp_path / "latest").read_text().strip() == first.name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", first.name]  # no step-000004, no temp dir
    ck = load_checkpoint(tmp_path)
    assert ck.path == first and ck.trainer_state["train_state"]["step"] == 2
    for k, v in ck.model.state_dict().items():
        assert np.array_equal(v, saved_weights[k]), k


CRASH_SCRIPT = textwrap.dedent("""
    import os, sys
    import numpy as np
    import minigrad as mg
    import gpt.checkpoint as c
    from gpt.model import GPTConfig, GPTModel

    mg.manual_seed(0)
    model = GPTModel(GPTConfig.from_preset("tiny", vocab_size=40, context_length=16, emb_dim=32))
    c.save_checkpoint(sys.argv[1], model, step=1)
    real = c.safetensors.save_file
    def die_after_the_weights(tensors, path, *a, **k):
        real(tensors, path, *a, **k)
        os._exit(9)                      # the process dies: no except, no finally, no cleanup
    c.safetensors.save_file = die_after_the_weights
    model.tok_emb.weight.data += 1.0
    c.save_checkpoint(sys.argv[1], model, step=2)
""")


def test_a_process_killed_mid_save_leaves_the_previous_checkpoint_loadable(tmp_path):
    result = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, str(tmp_path)], capture_output=True, timeout=120,
                            env=subprocess_env())
    assert result.returncode == 9, result.stderr.decode()
    assert (tmp_path / "latest").read_text().strip() == "step-000001"
    assert not (tmp_path / "step-000002").exists()              # nothing under a final name
    ck = load_checkpoint(tmp_path)
    assert ck.path.name == "step-000001"
    mg.manual_seed(0)
    fresh = GPTModel(ck.config)
    assert_same_weights(ck.model, fresh)                           # the first save's weights


def test_a_crash_while_replacing_a_checkpoint_of_the_same_step_keeps_one_loadable(tmp_path, monkeypatch):
    """The CLI saves the final step twice (at its evaluation, then at the end); a crash (or a second
    Ctrl-C) between removing the old directory and renaming the new one must not lose both."""
    model = tiny_model()
    save_checkpoint(tmp_path, model, step=5)
    real_replace = os.replace

    def crash_on_directory_rename(src, dst):
        if Path(src).is_dir() and Path(dst).name == "step-000005" and not Path(src).name.startswith("step-"):
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(checkpoint_mod.os, "replace", crash_on_directory_rename)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, model, step=5)
    monkeypatch.setattr(checkpoint_mod.os, "replace", real_replace)
    assert_same_weights(load_checkpoint(tmp_path).model, model)


def test_saving_the_same_step_again_replaces_it(tmp_path):
    model = tiny_model()
    save_checkpoint(tmp_path, model, step=5)
    model.tok_emb.weight.data += 1.0
    save_checkpoint(tmp_path, model, step=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-000005"]
    assert_same_weights(load_checkpoint(tmp_path).model, model)


@pytest.mark.parametrize("keep", [1, 2, 3])
def test_pruning_keeps_the_newest_keep_checkpoints(tmp_path, keep):
    model = tiny_model()
    for step in (1, 2, 3, 10, 11):
        path = save_checkpoint(tmp_path, model, step=step, keep=keep)
        assert resolve(tmp_path) == path
    names = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("step-"))
    assert names == [f"step-{s:06d}" for s in (1, 2, 3, 10, 11)][-keep:]
    assert no_temporaries(tmp_path)
    for name in names:
        load_checkpoint(tmp_path / name)


# --------------------------------------------------------------------------------------------------
# Damaged and mismatched checkpoints
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path, tokenizer):
    model, optimizer, trainer = build_run(4)
    trainer.run(on_step=stop_at(2))
    path = save_run(tmp_path / "ck", model, optimizer, trainer, tokenizer=tokenizer)
    return tmp_path / "ck", path


def error_for(directory, **kwargs):
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(directory, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_directory(tmp_path):
    assert str(tmp_path / "nope") in error_for(tmp_path / "nope")


def test_directory_without_latest(tmp_path):
    (tmp_path / "empty").mkdir()
    message = error_for(tmp_path / "empty")
    assert str(tmp_path / "empty") in message and "latest" in message


def test_latest_naming_a_missing_directory(saved):
    directory, path = saved
    (directory / "latest").write_text("step-000099\n")
    message = error_for(directory)
    assert str(directory / "latest") in message and "step-000099" in message


@pytest.mark.parametrize("keep_bytes", [0, 5, 100, -50])
def test_truncated_weights(saved, keep_bytes):
    directory, path = saved
    weights = path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:keep_bytes])
    assert str(weights) in error_for(directory)


@pytest.mark.parametrize("content", ["{not json", "[]", '{"model": {"emb_dim": 32}}',
                                     '{"model": {"colour": "red"}}', '{"model": {"emb_dim": "wide"}}', ""])
def test_invalid_config(saved, content):
    directory, path = saved
    (path / "config.json").write_text(content)
    assert str(path / "config.json") in error_for(directory)


def test_missing_config(saved):
    directory, path = saved
    (path / "config.json").unlink()
    assert str(path / "config.json") in error_for(directory)


@pytest.mark.parametrize("change", [{"emb_dim": 64}, {"vocab_size": 41}, {"n_layers": 3}, {"n_layers": 1},
                                    {"pos_emb": "rope"}, {"qkv_bias": True}])
def test_weights_that_do_not_fit_the_config(saved, change):
    directory, path = saved
    config = json.loads((path / "config.json").read_text())
    config["model"].update(change)
    (path / "config.json").write_text(json.dumps(config))
    assert str(path / "model.safetensors") in error_for(directory)


def test_damaged_tokenizer(saved):
    directory, path = saved
    (path / "tokenizer.txt").write_text("gpt-bpe v1\nmerges 12\n1 2\n")
    assert str(path / "tokenizer.txt") in error_for(directory)


@pytest.mark.parametrize("name, content", [("trainer.json", "{trunc"), ("optimizer.safetensors", "xx"),
                                           ("trainer.json", '{"optimizer": {"__array__": "nope"}, "trainer": {}}')])
def test_damaged_training_state(saved, name, content):
    directory, path = saved
    (path / name).write_text(content)
    assert str(path / name) in error_for(directory)
    # generation does not need the training state, so it still loads without it
    assert load_checkpoint(directory, load_training_state=False).model is not None
