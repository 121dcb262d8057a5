"""``hepaudit distill run`` and the ``distill`` audit chain: the quick run prints the Pareto table and
writes its files, bad input gives one sentence and exit code 1, the chain validates and its CPU stages
run and agree with each other."""

import json

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from reference.distill.audit_chain import (build_chain, fake_quant_inference, float_inference, integer_inference,
                                           make_events, preprocessing, training_step)
from reference.distill.cli import register


@pytest.fixture(scope="module")
def cli():
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(map(str, args)))


def test_quick_run_prints_the_pareto_table_and_writes_results(cli, tmp_path):
    result = cli("distill", "run", "--tasks", "digits", "--quick", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "digits" in result.output and "W4A4" in result.output and "BOPs" in result.output
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert list(saved["tasks"]) == ["digits"] and len(saved["tasks"]["digits"]["points"]) >= 6
    assert (tmp_path / "out" / "pareto_digits.png").exists()


@pytest.mark.parametrize("args, message", [
    (("--tasks", "digits,jets"), "unknown task(s) jets"),
    (("--tasks", ","), "(none given)"),
    (("--device", "tpu"), "--device must be cpu or cuda"),
])
def test_bad_inputs_give_one_sentence_and_exit_code_1(cli, tmp_path, args, message):
    result = cli("distill", "run", "--quick", "--out", tmp_path / "out", *args)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_an_absent_gpu_and_a_file_as_output_folder_are_refused(cli, tmp_path):
    if not torch.cuda.is_available():
        result = cli("distill", "run", "--quick", "--device", "cuda", "--out", tmp_path / "out")
        assert result.exit_code == 1 and "not available" in result.output
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = cli("distill", "run", "--quick", "--tasks", "digits", "--out", blocker)
    assert result.exit_code == 1 and "is a file" in result.output and "Traceback" not in result.output


def test_audit_chain_validates_and_its_cpu_stages_run_and_agree():
    chain = build_chain()
    chain.validate()
    assert list(chain.stages) == ["preprocessing", "training_step", "float_inference", "fake_quant_inference",
                                  "integer_inference"]
    assert set(chain.stages["integer_inference"].implementations) == {"cpu"}
    assert set(chain.stages["float_inference"].implementations) == {"cpu", "gpu"}
    events = list(make_events({"events": 2, "seed": 3, "samples": 200}))
    assert len(events) == 2 and events[0]["images"].shape == (200, 64)
    samples = preprocessing(events[0]["images"])
    assert samples.dtype == np.float32 and 0.0 <= samples.min() and samples.max() <= 1.0
    assert float_inference(samples).shape == (200, 10)
    fake = fake_quant_inference(samples).numpy()
    integer = integer_inference(samples)
    np.testing.assert_allclose(integer, fake, rtol=1e-6, atol=1e-6)  # bit-exact codes, float rounding after
    assert np.array_equal(integer.argmax(axis=1), fake.argmax(axis=1))
    step = training_step(samples)
    assert torch.equal(step, training_step(samples)) and torch.all(step > 0)  # same starting weights every call
    compare = chain.stages["fake_quant_inference"].comparator
    assert compare({"fake_quant_logits": torch.from_numpy(fake)}, {"fake_quant_logits": torch.from_numpy(integer)}).rates["0.1%"] > 0.99
