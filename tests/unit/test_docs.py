"""The README's configuration reference must list every config key (docs cannot drift)."""

from pathlib import Path

from curiosity_sft.config import CurriculumConfig, SFTConfig


def test_readme_documents_every_config_key():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [k for k in SFTConfig.model_fields if f"| `{k}` |" not in readme]
    assert not missing, f"README configuration table lacks {missing}"


def test_curriculum_doc_documents_every_curriculum_key():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "CURRICULUM.md").read_text()
    missing = [k for k in CurriculumConfig.model_fields if f"| `curriculum.{k}` |" not in doc]
    assert not missing, f"docs/CURRICULUM.md configuration table lacks {missing}"


def test_make_test_installs_and_requires_the_lm_eval_cross_check():
    """The lm-evaluation-harness cross-check must run in `make test` (CI runs `make test`), not skip."""
    import re

    root = Path(__file__).resolve().parents[2]
    assert re.search(r'^lmeval = \["lm-eval[><=]', (root / "pyproject.toml").read_text(), re.M)  # the extra
    makefile = (root / "Makefile").read_text()
    test_rule = re.search(r"^test: (.*)\n\t(.*)$", makefile, re.M)
    assert test_rule, "no `test:` rule"
    stamp = next(t for t in test_rule.group(1).split() if re.search(rf"^{re.escape(t)}:.*\n(\t.*\n)*\t.*\[lmeval\]",
                                                                   makefile, re.M))
    assert stamp and "CURIOSITY_SFT_TEST_REQUIRES=lm_eval" in test_rule.group(2)
    assert "make test" in (root / ".ci" / "run").read_text()
