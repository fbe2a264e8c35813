"""Chat JSONL data: streaming validation (``validate``), rules (``rules``), tokenizers and chat templates
(``tokens``), exact dataset-scale token counting (``counting``), report rendering data (``report``) and
train/validation splitting (``split``).

Kept import-light on purpose: ``phi3ft validate`` must start fast and never import Azure.
"""
