"""The Kedro glue: what runs the library as this Kedro project, and nothing the library needs.

Hooks (run-start parameter checks, MLflow tracking, threads, Ray), the served-model binding for
kedro-mlflow, the ``kedro run`` extension with its short error messages, the console's logging
and warning filters, credential redaction, and every private Kedro / kedro-mlflow API the project
touches (``kedro_private``). Kedro itself still finds the package root's ``settings``,
``pipeline_registry`` and ``cli`` modules where it looks for them.
"""
