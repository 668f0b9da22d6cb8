"""The core library of unlearning methods: the data contract, interventions, shared fitting, bases.

Like :mod:`harness.sae` for dictionary learners, it registers nothing: the methods are
plugins (``pga``, ``md_pga``, ``pga_adversarial``, ``leace``, ``mean_diff_projection``,
``gradient_ascent``) and the ``unlearning`` suite is one too; all of them import from here.
Importing any module below is cheap (torch is imported inside the functions that need it).

- ``harness.unlearning.data``: :class:`~harness.unlearning.data.UnlearningData` (what
  ``fit(model, forget, retain, *, seed)`` receives), the ``Hook`` and ``Pooling`` literals,
  :func:`~harness.unlearning.data.pooled_activations`
- ``harness.unlearning.probes``: the batched L2 logistic probe (``fit_logistic``, ``predict``)
- ``harness.unlearning.erasure``: removable interventions (``AffineEdit``, ``HookEdits``,
  ``WeightEdit``), ``stable_id``, ``hook_points``, ``fit_depthwise`` (one closed-form edit
  per depth, live) and ``fit_probe_edits`` (the PGA family's edit)
- ``harness.unlearning.methods``: the bases ``HookEditMethod`` / ``HookEditConfig`` and
  ``ProbeEditMethod`` / ``ProbeEditConfig`` of the activation-edit methods
"""
