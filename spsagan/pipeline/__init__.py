"""The pipeline's single sources of truth: the stage registry, the validated params, and one launcher.

`registry` reads `workflow/stages.yaml` (the DAG, written once) and renders `dvc.yaml` from it;
`params` checks `params.yaml` against its schema and resolves one stage's section for the active
profile; `launch` turns a stage's job into its command and resources (threads, torchrun above one
GPU, runtime keys outside both tools' hashes) and runs it; `dvcsync` records a Snakemake run in
dvc.lock. Snakemake's `workflow/Snakefile` and every `steps/<stage>.py` go through these modules.
"""
