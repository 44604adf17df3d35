"""Installs the BERT pretraining pipeline (`pip install -e .`).

It also compiles three small C extensions (components/pretraining_data/_*.c),
so installing needs a C compiler and the Python headers.

This file is also what Beam/Dataflow workers use to get the project's code
(`--setup_file ./setup.py`), so it lists only the project's own packages; the
heavy dependencies are pinned in `requirements/lock.txt` and installed from it.
"""
import setuptools

setuptools.setup(
    name="bert-tfx-pipeline",
    version="0.1.0",
    description="BERT pretraining (masked LM + next sentence) as a TFX pipeline, local and on Vertex AI.",
    python_requires=">=3.10,<3.11",
    packages=setuptools.find_packages(include=["pipeline", "pipeline.*", "components", "components.*", "kubeflow", "kubeflow.*"]),
    package_data={"components": ["bert/configs/*.json"]},
    include_package_data=True,
    install_requires=[
        # Ranges only: the exact, tested versions come from requirements/lock.txt.
        "tfx>=1.16,<1.17",
        "tensorflow>=2.16,<2.17",
        "tensorflow-text>=2.16,<2.17",
        "tf-keras>=2.16,<2.17",
        "apache-beam>=2.59,<2.62",
    ],
    # The prepare-data hot path (text -> documents -> instance spans -> framed TFRecords);
    # see the files' headers.
    ext_modules=[setuptools.Extension(
        f"components.pretraining_data.{name}", [f"components/pretraining_data/{name}.c"],
        depends=["components/pretraining_data/_random.h"],
        extra_compile_args=["-O3", "-std=c11", "-Wall"]) for name in ("_documents", "_instances", "_records")],
    entry_points={"console_scripts": ["bertpipe=pipeline.entry_point:main"]},
)
