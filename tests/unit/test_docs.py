"""The README's configuration reference must list every config key (docs cannot drift)."""

from pathlib import Path

from curiosity_sft.config import SFTConfig


def test_readme_documents_every_config_key():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [k for k in SFTConfig.model_fields if f"| `{k}` |" not in readme]
    assert not missing, f"README configuration table lacks {missing}"
