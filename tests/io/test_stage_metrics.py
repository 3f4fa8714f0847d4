import mlflow

from clip_reid.io.stage_metrics import StageMetricsDataset


def test_metrics_are_logged_under_their_stage(mlflow_tracking):
    with mlflow.start_run() as run:
        StageMetricsDataset(prefix="evaluation").save({"rank1": {"value": 0.5, "step": 0},
                                                       "mAP": [{"value": 0.25, "step": 0}]})
    logged = mlflow.get_run(run.info.run_id).data.metrics
    assert logged == {"evaluation/rank1": 0.5, "evaluation/mAP": 0.25}
