"""Vertex AI / Kubeflow Pipelines: compiling the pipeline spec and the container it runs in."""
