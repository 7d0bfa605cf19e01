"""The chest-nodule models: a small CNN trained on simulated studies and exported for Triton.

- :mod:`modeling.network`: ``NoduleNet``, ``image_statistics`` and ``InferenceEngine`` (self-contained; the
  exported ``chest_nodule_logic.py`` is a copy of it).
- :mod:`modeling.train`: ``VersionSpec``, ``VERSION_SPECS`` and ``train(spec, seed) -> TrainedModel``.
- :mod:`modeling.calibration`, :mod:`modeling.metrics`: temperature scaling, ECE, operating threshold,
  AUROC/sensitivity/specificity overall and per subgroup.
- :mod:`modeling.export`: ``export(trained, repo, version)`` writes ``model_repo/chest_nodule/<version>/``.
- :mod:`modeling.cli`: the ``model`` typer sub-app (``train``, ``export``).
"""
