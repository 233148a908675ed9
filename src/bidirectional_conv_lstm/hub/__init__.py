"""The Hugging Face Hub: a model with its card (:mod:`.push`), a dataset with its card (:mod:`.datasets_push`)."""

from .datasets_push import create_dataset_card, push_dataset_to_hub
from .push import push_to_hub, upload_folder_to_hub

__all__ = ["create_dataset_card", "push_dataset_to_hub", "push_to_hub", "upload_folder_to_hub"]
