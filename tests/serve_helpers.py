"""Fixtures for the serve and documents tests: a real-model (SmolLM2) chat run trained one step, the documents
with a fact found nowhere else, and a server in a thread."""
from __future__ import annotations

from pathlib import Path

import pytest

from chat_helpers import CHAT, chat_runs_dir, make_config, one_thread, train_run  # noqa: F401

FACT_QUESTION = "What is the capital of Veltrania?"
FACT = "Oskarbrod"


def write_docs(folder: Path) -> Path:
    """Three small documents; only veltrania.txt says what Veltrania's capital is."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lighthouses.md").write_text("# Lighthouses\n\nThe Zorbel lighthouse stands on the northern cape. Its "
                                           "keeper in 1911 was Marta Quillon.\n\nFog horns sound every thirty "
                                           "seconds in bad weather.\n", encoding="utf-8")
    (folder / "veltrania.txt").write_text(f"The capital of Veltrania is {FACT}.\n\nVeltrania exports copper and "
                                          "wool.\n", encoding="utf-8")
    (folder / "bread.html").write_text("<html><head><title>Bread</title><script>var x = 1;</script></head><body>"
                                       "<p>Bread rises because of yeast.</p></body></html>", encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def docs_dir(tmp_path_factory):
    return write_docs(tmp_path_factory.mktemp("docs"))


@pytest.fixture(scope="session")
def smollm2_chat_run(one_thread, chat_runs_dir, smollm2_folder):  # noqa: F811
    """SmolLM2-135M-Instruct with a chat (messages) adapter trained for one step: its answers stay the
    instruct model's own, in its ChatML format."""
    return train_run(make_config(CHAT, model__name_or_path="smollm2-135m-instruct"), chat_runs_dir, "smol-chat",
                     steps=1)


class ThreadServer:
    """``studio.serving`` on an engine, in a thread of the test process, on a free port."""

    def __init__(self, engine, **options) -> None:
        from studio.serving.app import ServeOptions, Server, create_app

        self.engine = engine
        self.server = Server(create_app(lambda: engine, ServeOptions(**options)), "127.0.0.1", 0).start()
        self.url = self.server.url
        self.base = self.url[:-3]

    def client(self, key: str = "none"):
        from openai import OpenAI

        return OpenAI(base_url=self.url, api_key=key, max_retries=0, timeout=120)

    def stop(self) -> None:
        self.server.stop()
