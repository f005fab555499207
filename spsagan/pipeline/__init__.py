"""The pipeline's single sources of truth: the stage registry and the validated params.

`registry` reads `workflow/stages.yaml` (the DAG, written once) and renders `dvc.yaml` from it;
`params` checks `params.yaml` against its schema and resolves one stage's section for the active
profile. Snakemake's `workflow/Snakefile` and every `steps/<stage>.py` go through these two modules.
"""
