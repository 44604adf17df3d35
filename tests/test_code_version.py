"""pipeline.code_version: what a run records about the code that made it."""
from __future__ import annotations

import os
import shutil

from pipeline import code_version


def _copy_sources(tmp_path):
    for top in code_version.SOURCE_DIRS:
        shutil.copytree(os.path.join(code_version.REPO_ROOT, top), tmp_path / top,
                        ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    return str(tmp_path)


def test_source_hash_changes_with_trainer_code_and_bert_configs_but_not_with_tests(tmp_path):
    root = _copy_sources(tmp_path)
    before = code_version.source_hash(root)
    assert before == code_version.source_hash(root)  # deterministic
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("x = 1\n")
    assert code_version.source_hash(root) == before
    loop = tmp_path / "components" / "trainer" / "training_loop.py"
    loop.write_text(loop.read_text() + "\n# changed\n")
    after_code = code_version.source_hash(root)
    assert after_code != before
    config = tmp_path / "components" / "bert" / "configs" / "bert_test.json"
    config.write_text(config.read_text().replace("\"hidden_size\"", "\"hidden_size\" ", 1))
    assert code_version.source_hash(root) != after_code


def test_outside_git_the_commit_comes_from_the_environment(tmp_path):
    root = _copy_sources(tmp_path)
    version = code_version.current(root, environ={code_version.GIT_COMMIT_ENV: "abc123"})
    assert version.git_commit == "abc123" and version.git_dirty is None
    assert code_version.current(root, environ={}).git_commit is None
    assert version.package_version == "0.1.0"
    assert code_version.CodeVersion.from_dict(version.to_dict()) == version


def test_in_this_checkout_the_commit_is_git_head():
    version = code_version.current()
    if os.path.exists(os.path.join(code_version.REPO_ROOT, ".git")):
        assert version.git_commit and len(version.git_commit) == 40
        assert version.git_dirty in (True, False)


def test_image_tag_follows_the_code_and_what_the_dockerfile_copies_not_tests_or_docs(tmp_path):
    root = _copy_sources(tmp_path)
    for name in code_version.IMAGE_INPUTS:
        source = os.path.join(code_version.REPO_ROOT, name)
        os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
        if os.path.exists(os.path.join(root, name)):
            continue  # kubeflow/Dockerfile: copied with the sources
        (shutil.copytree if os.path.isdir(source) else shutil.copy)(source, os.path.join(root, name))
    tag = code_version.image_tag(root)
    assert tag.startswith("code-") and len(tag) == 21 and tag == code_version.image_tag(root)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("x = 1\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "x.md").write_text("words\n")
    assert code_version.image_tag(root) == tag  # a commit of tests and docs reuses the image
    seen = {tag}
    for changed in ("requirements/lock.txt", "kubeflow/Dockerfile", "components/trainer/run_fn.py"):
        with open(os.path.join(root, changed), "a", encoding="utf-8") as f:
            f.write("\n# changed\n")
        seen.add(code_version.image_tag(root))
    assert len(seen) == 4  # each change makes a new image


def test_bertpipe_code_version_prints_the_checkouts_version_or_its_image_tag(capsys):
    import json  # pylint: disable=import-outside-toplevel

    from pipeline import cli  # pylint: disable=import-outside-toplevel

    assert cli.main(["code-version"]) == 0
    assert json.loads(capsys.readouterr().out) == code_version.current().to_dict()
    assert cli.main(["code-version", "--image_tag"]) == 0
    assert capsys.readouterr().out.strip() == code_version.image_tag()
