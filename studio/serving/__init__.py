"""``studio serve``: an OpenAI-compatible HTTP API over the chat engine (adapters served without merging, prompts in
each run's trained format).

- ``schemas``: request parsing into ``GenerationParams`` and OpenAI-style errors; ``queue``: the bounded request
  queue; ``app``: the FastAPI app and a server that runs in a thread; ``snippets``: curl/openai examples.
"""
