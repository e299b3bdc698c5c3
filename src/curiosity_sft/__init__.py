"""curiosity-sft: supervised fine-tuning for reasoning data.

Data flows one way: raw files -> Examples (``data``) -> token batches and the loop
(``training``) -> checkpoint -> metrics and report (``evaluation``).
"""

__version__ = "0.1.0"
