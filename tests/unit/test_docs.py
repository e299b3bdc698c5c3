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
