"""Shared pytest fixtures."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny tensors: one thread avoids OpenMP hand-offs that dominate (and stall on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def local_hub():
    """A `LocalHub` (tests/hub_server.py): the local stand-in for the Hugging Face Hub, on 127.0.0.1.

    One server for the session; tests use their own repo names. Clients must be configured through
    ``local_hub.client_env(hf_home)`` (in a subprocess) since `huggingface_hub` reads its settings at import.
    """
    from hub_server import LocalHub

    with LocalHub() as hub:
        for url in (hub.endpoint, hub.storage_endpoint):
            assert urlsplit(url).hostname == "127.0.0.1", f"the test hub must be loopback-only, got {url}"
        yield hub
