"""The demo job end to end, small."""

from __future__ import annotations

import io

from rich.console import Console

import luminary as lm
from luminary.demo._job import DemoConfig, run_demo


def test_demo_trains_tracks_and_reports_where_things_are() -> None:
    buf = io.StringIO()
    result = run_demo(
        DemoConfig(
            project="demo-test",
            n_jets=2000,
            epochs=2,
            hidden=(8, 16),
            trials=4,
            serve_seconds=0.5,
        ),
        console=Console(file=buf, width=120),
    )
    text = buf.getvalue()
    assert "where everything is stored" in text
    assert result.best_run_id in text
    study_run = lm.get_run(result.run_id)
    assert study_run.tags["tune.role"] == "study"
    assert study_run.tags["best_run"] == result.best_run_id
    trials = lm.search_runs("demo-test", filter=f"parent_id = '{study_run.id}'")
    assert len(trials) == 4  # the study's trials, each a job and a child run
    assert {r.params["hidden"] for r in trials} <= {8, 16}
    assert all(r.tags["tune.state"] in ("complete", "pruned") for r in trials)
    study = lm.tune.load_study("deepsets-tuning", project="demo-test")
    assert len(study.trials) == 4
    run = lm.get_run(result.best_run_id)
    assert run.parent_id == study_run.id
    assert run.status.value == "finished"
    assert run.tags["tune.state"] == "complete"
    assert run.params["n_train"] == 1600
    assert run.metrics["val_auc"] == result.val_auc == run.metrics["value"]
    assert result.val_auc > 0.6  # clearly better than chance after two epochs
    assert len(lm.get_metric_history(run.id, "val_auc")) == 2
    assert len(lm.get_metric_history(run.id, "intermediate_value")) == 2
    assert len(lm.get_metric_history(run.id, "train/loss")) == 2 * 7  # 1600 / 256 -> 7 steps
    paths = [a.path for a in lm.list_artifacts(run.id)]
    # each trial ran as a job: its model, its output (Optuna's trial log on stderr) and the
    # call's result
    assert paths == [
        "logs/attempt-1/stderr.txt",
        "logs/attempt-1/stdout.txt",
        "model/config.json",
        "model/confusion.json",
        "model/deepsets.npz",
        "result.pkl",
    ]
    assert run.tags["job.state"] == "succeeded"
    assert run.metrics["resources/cpu_hours"] > 0
    assert "the study's trials, each a job" in text
    # The last step serves the production model and drives it over gRPC with tritonclient.
    assert "serving deepsets-jet-tagger@production" in text
    assert result.serving is not None
    assert result.serving.requests > 0
    assert result.serving.failed == 0
    assert result.serving.max_diff < 1e-5
    assert result.serving.direct_jets_per_s > 0
    # ... records the energy of the load per jet, with its source, as a serving run ...
    assert result.serving.served_joules_per_jet > 0
    assert result.serving.energy_source in ("rapl", "estimate")
    serving_run = lm.get_run(result.serving.run_id)
    assert serving_run.tags["kind"] == "serving"
    assert serving_run.tags["model"] == result.model
    assert serving_run.metrics["serving/joules_per_event"] > 0
    # ... and ends with the energy of every run and what making the model cost.
    assert "energy recorded with each run" in text
    assert f"cost to make {result.model}" in text
    assert "J/event" in text
