"""tui-lab: a terminal lab for training small GPT-style language models.

Data flows one way: ``config`` → ``data`` → ``models`` → ``train`` → ``runs`` (the run
store on disk) → ``app`` / ``results``. The app and the run store never import torch.
"""

__version__ = "0.1.0"
